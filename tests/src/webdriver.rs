//! A small W3C WebDriver client: a real headless Chromium driven through
//! Debian's `chromedriver` on a free port, killed when dropped. Requests are
//! plain HTTP/1.1 over TCP, one per connection, each within 30 s.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One browser session.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

/// Whether Chromium and its WebDriver server are installed
/// (`scripts/lib.sh`'s `ensure_browser_tools` installs them).
pub fn available() -> bool {
    ["chromium", "chromedriver"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Result<Self> {
        let port = crate::wait::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start chromedriver")?;
        let mut browser = Self {
            driver,
            port,
            session: String::new(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while browser.request("GET", "/status", None).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                bail!("chromedriver did not answer within 20s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // The tests run as root, where Chromium refuses to start
                // with its sandbox; it loads only the dashboard's own pages
                // from 127.0.0.1, so running it without one risks nothing.
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1360,900"],
            },
        }}});
        let created = browser
            .request("POST", "/session", Some(capabilities))
            .await?;
        browser.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {created}"))?
            .to_string();
        Ok(browser)
    }

    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        let io = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.write_all(request.as_bytes()).await?;
            read_response(&mut stream).await
        };
        let (head, body) = tokio::time::timeout(Duration::from_secs(30), io)
            .await
            .map_err(|_| anyhow!("{method} {path}: no answer within 30s"))??;
        let value: Value = serde_json::from_str(&body)
            .with_context(|| format!("{method} {path}: answer is not JSON: {body}"))?;
        if !head.starts_with("HTTP/1.1 200") {
            bail!("{method} {path}: {}", value["value"]["message"]);
        }
        Ok(value.get("value").cloned().unwrap_or(value))
    }

    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let path = format!("/session/{}{path}", self.session);
        self.request(method, &path, body).await
    }

    /// Loads `url`.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .await?;
        Ok(())
    }

    /// The page's current address.
    pub async fn url(&self) -> Result<String> {
        let url = self.command("GET", "/url", None).await?;
        Ok(url.as_str().unwrap_or_default().to_string())
    }

    /// The visible text of every element matching `css` (read again when
    /// the page redraws in the middle, a few times).
    pub async fn texts(&self, css: &str) -> Result<Vec<String>> {
        let mut tries = 0;
        loop {
            match self.texts_once(css).await {
                Err(e) if tries < 5 && e.to_string().contains("stale element") => tries += 1,
                other => return other,
            }
        }
    }

    async fn texts_once(&self, css: &str) -> Result<Vec<String>> {
        let found = self
            .command(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        let mut texts = Vec::new();
        for element in found.as_array().cloned().unwrap_or_default() {
            let Some(id) = element
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
            else {
                continue;
            };
            let text = self
                .command("GET", &format!("/element/{id}/text"), None)
                .await?;
            texts.push(text.as_str().unwrap_or_default().to_string());
        }
        Ok(texts)
    }

    /// The text of the first element matching `css`, if there is one.
    pub async fn text(&self, css: &str) -> Result<Option<String>> {
        Ok(self.texts(css).await?.into_iter().next())
    }

    /// Clicks the first element matching `css`. A page that redraws
    /// itself between finding and clicking is tried again, a few times.
    pub async fn click(&self, css: &str) -> Result<()> {
        let mut tries = 0;
        loop {
            let id = self.element(css).await?;
            match self
                .command("POST", &format!("/element/{id}/click"), Some(json!({})))
                .await
            {
                Err(e) if tries < 5 && e.to_string().contains("stale element") => tries += 1,
                other => return other.map(|_| ()),
            }
        }
    }

    /// Types `text` into the first element matching `css` (for a file
    /// input: chooses the file at that path).
    pub async fn send_keys(&self, css: &str, text: &str) -> Result<()> {
        let id = self.element(css).await?;
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await?;
        Ok(())
    }

    /// Replaces what the first input matching `css` holds with `text`,
    /// from the start again when the page redraws in the middle.
    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let mut tries = 0;
        loop {
            let id = self.element(css).await?;
            let done = async {
                self.command("POST", &format!("/element/{id}/clear"), Some(json!({})))
                    .await?;
                self.command(
                    "POST",
                    &format!("/element/{id}/value"),
                    Some(json!({ "text": text })),
                )
                .await
            };
            match done.await {
                Err(e) if tries < 5 && e.to_string().contains("stale element") => tries += 1,
                other => return other.map(|_| ()),
            }
        }
    }

    /// The WebDriver id of the first element matching `css`.
    async fn element(&self, css: &str) -> Result<String> {
        let found = self
            .command(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("no element {css}"))?
            .to_string();
        Ok(id)
    }

    /// Forgets every cookie of the page's site.
    pub async fn clear_cookies(&self) -> Result<()> {
        self.command("DELETE", "/cookie", None).await?;
        Ok(())
    }

    /// Runs `script` (an async function body calling its last argument
    /// with the result) in the page, with `args`.
    pub async fn run_async(&self, script: &str, args: Value) -> Result<Value> {
        self.command(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Sets a cookie for the page's site.
    pub async fn set_cookie(&self, name: &str, value: &str) -> Result<()> {
        self.command(
            "POST",
            "/cookie",
            Some(json!({ "cookie": { "name": name, "value": value, "path": "/" } })),
        )
        .await?;
        Ok(())
    }

    /// The value of the page's cookie `name` (WebDriver sees HttpOnly ones).
    pub async fn cookie(&self, name: &str) -> Result<String> {
        let cookie = self
            .command("GET", &format!("/cookie/{name}"), None)
            .await?;
        Ok(cookie["value"].as_str().unwrap_or_default().to_string())
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        use base64::Engine as _;
        let encoded = self.command("GET", "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .context("the screenshot is not base64")?;
        std::fs::write(path, png).with_context(|| format!("write {}", path.display()))
    }

    /// Waits until the first element matching `css` has text that
    /// `accept` takes, and returns it; fails naming `what` after `timeout`.
    pub async fn wait_text(
        &self,
        what: &str,
        css: &str,
        timeout: Duration,
        accept: impl Fn(&str) -> bool,
    ) -> String {
        crate::eventually(what, timeout, || async {
            self.texts(css)
                .await
                .ok()?
                .into_iter()
                .find(|text| accept(text))
        })
        .await
    }
}

/// One response: its head, and its body read to its length (chromedriver
/// keeps the connection open, whatever the request asked).
async fn read_response(stream: &mut tokio::net::TcpStream) -> std::io::Result<(String, String)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let length = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            let chunked = head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            loop {
                let body = &raw[end + 4..];
                let complete = match length {
                    Some(length) => body.len() >= length,
                    None if chunked => body.ends_with(b"0\r\n\r\n"),
                    None => false,
                };
                if complete || n == 0 {
                    let body = String::from_utf8_lossy(body).to_string();
                    let body = if chunked { unchunk(&body) } else { body };
                    return Ok((head, body));
                }
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    let body = String::from_utf8_lossy(&raw[end + 4..]).to_string();
                    return Ok((head, if chunked { unchunk(&body) } else { body }));
                }
                raw.extend_from_slice(&buf[..n]);
            }
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection closed before a response",
            ));
        }
    }
}

fn unchunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session ends its Chromium; then the driver goes.
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
