//! `reef maintenance on|off APP [--page FILE]`: every node answers the
//! app's routes with 503 and a page (the default one, or FILE's: .html,
//! .htm, .txt or .json, UTF-8, at most 64 KiB) while its instances keep
//! running; `off` serves the app again.

use crate::client::{self, call, connect};
use anyhow::{anyhow, bail, Context as _, Result};
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::maintenance::{MaintenancePage, MAX_PAGE_BYTES, RETRY_AFTER_SECS};
use std::io::Read as _;
use std::path::Path;

/// Turns maintenance `on` (with the page in `page`, if given) or off for `app`.
pub async fn maintenance(
    nats: &client::Nats,
    on: bool,
    app: String,
    page: Option<&Path>,
) -> Result<()> {
    let page = match (on, page) {
        (false, Some(_)) => bail!("--page goes with `reef maintenance on`"),
        (_, Some(path)) => Some(read_page(path)?),
        (_, None) => None,
    };
    let client = connect(nats).await?;
    let request = ApiRequest::SetMaintenance {
        app: app.clone(),
        on,
        page,
    };
    let ApiResponse::Done = call(&client, request).await? else {
        bail!("unexpected reply from the coordinator");
    };
    match on {
        true => eprintln!(
            "{app} is in maintenance: every node answers 503 with the page (Retry-After: \
             {RETRY_AFTER_SECS}); its instances keep running. `reef maintenance off {app}` ends it"
        ),
        false => eprintln!("{app} is out of maintenance: every node serves it again"),
    }
    Ok(())
}

/// Reads and checks a page, reading no more than the limit allows.
fn read_page(path: &Path) -> Result<MaintenancePage> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut body = Vec::new();
    file.take(MAX_PAGE_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display().to_string();
    MaintenancePage::from_file(&name, body).map_err(|e| anyhow!(e))
}
