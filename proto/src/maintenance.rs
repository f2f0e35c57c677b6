//! Maintenance mode: while an app is in maintenance every node's proxy
//! answers its routes with `503 Service Unavailable`, a `Retry-After` and a
//! page, and the app's instances keep running untouched (for migrations by
//! hand). The page is the operator's, checked here: text of a known type,
//! valid UTF-8, at most [`MAX_PAGE_BYTES`].

use serde::{Deserialize, Serialize};

/// The largest page accepted.
pub const MAX_PAGE_BYTES: usize = 64 * 1024;

/// What clients are told to wait before trying again (`Retry-After`).
pub const RETRY_AFTER_SECS: u32 = 120;

/// The page served when none is given.
pub const DEFAULT_PAGE: &str = "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Down for maintenance</title></head>\n<body>\n<h1>Down for maintenance</h1>\n<p>This site is being worked on and will be back shortly. Please try again in a few minutes.</p>\n</body>\n</html>\n";

/// The content types a page may be served with, by file extension.
pub const CONTENT_TYPES: [(&str, &str); 4] = [
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("json", "application/json"),
];

/// A page and the content type it is served with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenancePage {
    pub content_type: String,
    pub body: Vec<u8>,
}

impl MaintenancePage {
    /// The default page.
    pub fn default_page() -> Self {
        Self {
            content_type: CONTENT_TYPES[0].1.to_string(),
            body: DEFAULT_PAGE.as_bytes().to_vec(),
        }
    }

    /// A page read from a file named `file_name`: its type from the
    /// extension, then checked as [`MaintenancePage::check`] does.
    pub fn from_file(file_name: &str, body: Vec<u8>) -> Result<Self, String> {
        let extension = file_name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default();
        let Some((_, content_type)) = CONTENT_TYPES.iter().find(|(ext, _)| *ext == extension)
        else {
            return Err(format!(
                "{file_name}: a maintenance page is a .html, .htm, .txt or .json file"
            ));
        };
        let page = Self {
            content_type: content_type.to_string(),
            body,
        };
        page.check().map_err(|e| format!("{file_name}: {e}"))?;
        Ok(page)
    }

    /// Checks a page as it arrives from outside: a known content type, a
    /// body that is valid UTF-8, not empty and at most [`MAX_PAGE_BYTES`].
    pub fn check(&self) -> Result<(), String> {
        if !CONTENT_TYPES.iter().any(|(_, t)| *t == self.content_type) {
            return Err(format!(
                "{:?} is not a content type a maintenance page may have",
                self.content_type
            ));
        }
        if self.body.is_empty() {
            return Err("the maintenance page is empty".into());
        }
        if self.body.len() > MAX_PAGE_BYTES {
            return Err(format!(
                "the maintenance page is {} bytes; at most {} KiB are allowed",
                self.body.len(),
                MAX_PAGE_BYTES / 1024
            ));
        }
        if let Err(e) = std::str::from_utf8(&self.body) {
            return Err(format!(
                "the maintenance page is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ));
        }
        Ok(())
    }
}

/// An app's maintenance, as its record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// Listings leave the body out (it stays in the record and the routes).
    pub page: MaintenancePage,
    /// The page's size, kept for listings.
    pub page_bytes: u64,
    /// A page was given (`--page`) rather than the default one.
    pub custom_page: bool,
    pub since_ms: u64,
}

#[cfg(test)]
#[path = "maintenance_tests.rs"]
mod tests;
