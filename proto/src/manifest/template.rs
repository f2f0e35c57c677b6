//! Environment values with substitutions: `${data_dir}` (the app's persistent
//! directory on the node), `${port}` (the instance's port) and
//! `${secret:KEY}` (a secret, decrypted only on the node). `$$` is a literal
//! `$`. Anything else after `${` is an error naming it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvPart {
    Text(String),
    DataDir,
    Port,
    Secret(String),
}

/// A parsed environment value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvTemplate(pub Vec<EnvPart>);

/// Whether `key` can name a secret: 1-128 of `[A-Za-z0-9_.-]`.
pub fn valid_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl EnvTemplate {
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.contains('\0') {
            return Err("contains a NUL byte".into());
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = input;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                text.push('$');
                rest = after;
                continue;
            }
            let Some(body) = rest.strip_prefix('{') else {
                // A lone `$` (as in a shell snippet) stays as it is.
                text.push('$');
                continue;
            };
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {input:?}"))?;
            let name = &body[..end];
            rest = &body[end + 1..];
            let part = match name {
                "data_dir" => EnvPart::DataDir,
                "port" => EnvPart::Port,
                _ => match name.strip_prefix("secret:") {
                    Some(key) if valid_secret_key(key) => EnvPart::Secret(key.to_string()),
                    Some(key) => return Err(format!("invalid secret name {key:?}")),
                    None => {
                        return Err(format!(
                            "unknown substitution ${{{name}}}: use ${{data_dir}}, ${{port}} or ${{secret:KEY}} ($$ for a literal $)"
                        ))
                    }
                },
            };
            if !text.is_empty() {
                parts.push(EnvPart::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(EnvPart::Text(text));
        }
        Ok(Self(parts))
    }

    /// The secrets this value refers to.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            EnvPart::Secret(key) => Some(key.as_str()),
            _ => None,
        })
    }

    /// The value with every substitution filled in; `secret` looks secrets up.
    pub fn render(
        &self,
        data_dir: &str,
        port: u16,
        secret: impl Fn(&str) -> Option<String>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                EnvPart::Text(t) => out.push_str(t),
                EnvPart::DataDir => out.push_str(data_dir),
                EnvPart::Port => out.push_str(&port.to_string()),
                EnvPart::Secret(key) => {
                    out.push_str(&secret(key).ok_or_else(|| format!("secret {key} is not set"))?)
                }
            }
        }
        Ok(out)
    }
}
