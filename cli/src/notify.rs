//! `reef notify add|list|rm`: webhooks that receive the cluster's events.

use crate::client::{self, call, connect};
use crate::views;
use anyhow::{bail, Result};
use clap::Subcommand;
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::events::EventKind;
use reef_proto::notify::Webhook;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// POST the cluster's events as JSON to URL (admins).
    Add {
        /// Its name: 1 to 63 lowercase letters, digits and '-'.
        name: String,
        /// Where each event is POSTed (http:// or https://).
        url: String,
        /// Only these kinds, comma-separated (default: every kind; see
        /// `reef events --help`).
        #[arg(long, value_delimiter = ',', value_parser = EventKind::parse)]
        events: Vec<EventKind>,
    },
    /// The webhooks, with how many events each took and the last failure.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a webhook.
    Rm { name: String },
}

pub async fn notify(nats: &client::Nats, command: NotifyCommand) -> Result<()> {
    let client = connect(nats).await?;
    match command {
        NotifyCommand::Add { name, url, events } => {
            // Said here, before anything is sent, as the coordinator would say it.
            if let Err(e) = Webhook::check(&name, &url) {
                bail!("{e}");
            }
            let kinds = kinds_text(&events);
            let request = ApiRequest::AddWebhook {
                name: name.clone(),
                url,
                kinds: events,
            };
            let ApiResponse::Done = call(&client, request).await? else {
                bail!("unexpected reply from the coordinator");
            };
            eprintln!("webhook {name} added: it receives {kinds}");
            Ok(())
        }
        NotifyCommand::List { json } => {
            let ApiResponse::Webhooks(hooks) = call(&client, ApiRequest::ListWebhooks).await?
            else {
                bail!("unexpected reply from the coordinator");
            };
            if json {
                return views::print_json(&Value::Array(hooks.iter().map(hook_json).collect()));
            }
            if hooks.is_empty() {
                eprintln!("no webhooks (add one with reef notify add NAME URL)");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = hooks
                .iter()
                .map(|h| {
                    vec![
                        h.name.clone(),
                        h.url.clone(),
                        kinds_text(&h.kinds),
                        h.delivered.to_string(),
                        h.failed.to_string(),
                        h.last_error.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            views::print_table(
                &["NAME", "URL", "EVENTS", "DELIVERED", "FAILED", "LAST ERROR"],
                &rows,
            );
            Ok(())
        }
        NotifyCommand::Rm { name } => {
            let ApiResponse::Done = call(&client, ApiRequest::RemoveWebhook(name.clone())).await?
            else {
                bail!("unexpected reply from the coordinator");
            };
            eprintln!("webhook {name} removed");
            Ok(())
        }
    }
}

fn kinds_text(kinds: &[EventKind]) -> String {
    if kinds.is_empty() {
        return "every event".to_string();
    }
    kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
}

fn hook_json(h: &Webhook) -> Value {
    json!({
        "name": h.name,
        "url": h.url,
        "events": h.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "owner": h.owner,
        "created_at_ms": h.created_at_ms,
        "delivered": h.delivered,
        "failed": h.failed,
        "last_error": h.last_error,
        "last_failure_ms": h.last_failure_ms,
    })
}
