//! `reef ui`: a one-time sign-in link to the web dashboard for the user of
//! the credential in use. The coordinator keeps only the token's hash; the
//! link works once, within minutes.

use crate::client::{self, call, connect};
use anyhow::{bail, Context, Result};
use clap::Args;
use reef_proto::api::{ApiRequest, ApiResponse};

#[derive(Args)]
pub struct UiArgs {
    /// The dashboard's address as your browser reaches it (e.g. through a
    /// tunnel: http://127.0.0.1:7480) [default: the answering coordinator's
    /// own --ui address].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Open the link with xdg-open as well as printing it.
    #[arg(long)]
    open: bool,
}

pub async fn ui(nats: &client::Nats, args: UiArgs) -> Result<()> {
    if let Some(url) = &args.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--url {url:?}: expected an http:// or https:// address");
        }
    }
    let client = connect(nats).await?;
    let ApiResponse::UiLink {
        token,
        base,
        expires_at_ms,
    } = call(&client, ApiRequest::UiLink).await?
    else {
        bail!("unexpected reply from the coordinator");
    };
    let Some(base) = args.url.or(base) else {
        bail!(
            "the coordinator that answered serves no dashboard (`reef coordinator --ui ADDR`): \
             pass the dashboard's address with --url"
        );
    };
    let link = format!("{}/signin?token={token}", base.trim_end_matches('/'));
    println!("{link}");
    let left = expires_at_ms.saturating_sub(reef_proto::now_ms()) / 1000;
    eprintln!("this link signs you in once, within {left}s");
    if args.open {
        std::process::Command::new("xdg-open")
            .arg(&link)
            .status()
            .context("could not run xdg-open")?;
    }
    Ok(())
}
