//! `notify.add`, `notify.list`, `notify.remove`: the webhooks the leader's
//! notifier (`drive/notify.rs`) sends the cluster's events to.

use super::{invalid, ApiError};
use crate::store::Store;
use reef_proto::api::ApiErrorKind;
use reef_proto::events::EventKind;
use reef_proto::notify::{Webhook, MAX_WEBHOOKS};

/// Adds webhook `name`; refused when the name is taken.
pub(crate) async fn add(
    store: &Store,
    name: String,
    url: String,
    kinds: Vec<EventKind>,
    caller: &str,
) -> Result<(), ApiError> {
    Webhook::check(&name, &url).map_err(invalid)?;
    if store.webhooks.keys().await?.len() >= MAX_WEBHOOKS {
        return Err(invalid(format!(
            "a cluster has at most {MAX_WEBHOOKS} webhooks: remove one first"
        )));
    }
    let mut kinds = kinds;
    kinds.sort_by_key(|k| k.name());
    kinds.dedup();
    let hook = Webhook {
        name: name.clone(),
        url,
        kinds,
        owner: caller.to_string(),
        created_at_ms: reef_proto::now_ms(),
        delivered: 0,
        failed: 0,
        last_error: None,
        last_failure_ms: None,
    };
    match store.webhooks.create(&name, &hook).await? {
        Some(_) => Ok(()),
        None => Err(invalid(format!(
            "a webhook named {name} exists already (reef notify rm {name} first)"
        ))),
    }
}

/// Every webhook, by name.
pub(crate) async fn list(store: &Store) -> Result<Vec<Webhook>, ApiError> {
    let mut hooks = store.webhooks.all().await?;
    hooks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(hooks)
}

pub(crate) async fn remove(store: &Store, name: &str) -> Result<(), ApiError> {
    if !store.webhooks.contains(name).await? {
        return Err(ApiError::new(
            ApiErrorKind::NotFound,
            format!("no webhook named {name}"),
        ));
    }
    store.webhooks.delete(name).await?;
    Ok(())
}
