//! `reef user add|list|rm`: people's credentials. `add` makes the user's
//! key here and sends only its public half; the coordinator signs a JWT for
//! it, and the seed never leaves this machine. `rm` revokes at once.

use crate::client::{self, call, connect};
use anyhow::{bail, Result};
use clap::Subcommand;
use reef_proto::api::{ApiRequest, ApiResponse};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Issue a credential for a new user and write it to FILE (0600).
    Add {
        name: String,
        /// admin, deployer, submitter or viewer.
        #[arg(long)]
        role: String,
        /// Where to write the credentials file (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// List users and whether they were revoked.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a user: its connections close now, and it cannot connect again.
    Rm { name: String },
}

pub async fn user(nats: &client::Nats, command: UserCommand) -> Result<()> {
    let client = connect(nats).await?;
    match command {
        UserCommand::Add { name, role, out } => {
            if out.exists() {
                bail!("{} exists; nothing was written", out.display());
            }
            let key = nkeys::KeyPair::new_user();
            let request = ApiRequest::AddUser {
                name: name.clone(),
                role: role.clone(),
                public_key: key.public_key(),
            };
            let ApiResponse::UserAdded { jwt } = call(&client, request).await? else {
                bail!("unexpected reply from the coordinator");
            };
            let seed = zeroize::Zeroizing::new(
                key.seed()
                    .map_err(|e| anyhow::anyhow!("the new key: {e}"))?,
            );
            let text = reef_trust::creds::render(&jwt, &seed);
            crate::cluster::write_private(&out, text.as_bytes())?;
            println!("user {name} ({role}): credentials in {}", out.display());
        }
        UserCommand::List { json } => {
            let ApiResponse::Users(users) = call(&client, ApiRequest::ListUsers).await? else {
                bail!("unexpected reply from the coordinator");
            };
            if json {
                let rows: Vec<serde_json::Value> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "name": u.name,
                            "role": u.role,
                            "public_key": u.public_key,
                            "added_at_ms": u.added_at_ms,
                            "revoked_at_s": u.revoked_at_s,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.name.clone(),
                            u.role.clone(),
                            if u.revoked_at_s.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                            .into(),
                            u.public_key.clone(),
                        ]
                    })
                    .collect();
                crate::views::print_table(&["NAME", "ROLE", "STATE", "KEY"], &rows);
            }
        }
        UserCommand::Rm { name } => {
            call(&client, ApiRequest::RemoveUser(name.clone())).await?;
            println!("user {name} revoked");
        }
    }
    Ok(())
}
