//! The dashboard's embedded files, the pages that say why someone is not
//! signed in, and the actions a page may post, checked before they become
//! API requests.

use super::links::LinkRefused;
use super::session::CookieRefused;
use super::{full, Body};
use hyper::{Response, StatusCode};
use reef_proto::api::ApiRequest;
use reef_proto::subjects::verbs;

pub(crate) const INDEX: &str = include_str!("assets/index.html");
pub(crate) const APP_JS: &str = include_str!("assets/app.js");
pub(crate) const APP_CSS: &str = include_str!("assets/app.css");
pub(crate) const SIGNIN_JS: &str = include_str!("assets/signin.js");

fn page(status: StatusCode, title: &str, text: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>reef: {title}</title>\
         <link rel=\"stylesheet\" href=\"/app.css\"></head><body><main class=\"notice\">\
         <h1>{title}</h1><p id=\"reason\">{}</p><p>Run <code>reef ui</code> for a sign-in link.</p>\
         <p>Or sign in with your credential file (<code>.creds</code>); its key stays in this browser:<br>\
         <input type=\"file\" id=\"creds\" accept=\".creds\"> <button id=\"creds-signin\">Sign in</button></p>\
         <p id=\"creds-error\" class=\"state failed\"></p>\
         </main><script src=\"/signin.js\"></script></body></html>",
        escape(text)
    );
    full(status, "text/html; charset=utf-8", html)
}

/// Not signed in: no cookie, or one that was refused (and why).
pub(crate) fn signed_out(why: Option<CookieRefused>) -> Response<Body> {
    match why {
        None => page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            "You are not signed in.",
        ),
        Some(why @ (CookieRefused::Expired | CookieRefused::Revoked)) => page(
            StatusCode::UNAUTHORIZED,
            "Session refused",
            &why.to_string(),
        ),
        Some(why @ CookieRefused::Unchecked) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Session not checked",
            &why.to_string(),
        ),
        Some(why) => page(StatusCode::FORBIDDEN, "Session refused", &why.to_string()),
    }
}

/// A sign-in link that signed nobody in.
pub(crate) fn link_refused(why: &LinkRefused) -> Response<Body> {
    let status = match why {
        LinkRefused::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    page(status, "Sign-in link refused", &why.to_string())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The API request an action posted by a page asks for (JSON: `verb` and
/// its `app`, `job`, `replicas` or `to`), or what is wrong with it.
pub(crate) fn action(body: &[u8]) -> Result<ApiRequest, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the action is not JSON: {e}"))?;
    let text = |field: &str| -> Result<String, String> {
        value[field]
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .map(str::to_string)
            .ok_or_else(|| format!("{field}: missing"))
    };
    let number = |field: &str| -> Result<Option<u32>, String> {
        match &value[field] {
            serde_json::Value::Null => Ok(None),
            v => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("{field}: expected a whole number")),
        }
    };
    let verb = text("verb")?;
    match verb.as_str() {
        verbs::APP_ROLLBACK => Ok(ApiRequest::Rollback {
            app: text("app")?,
            to: number("to")?,
        }),
        verbs::APP_SCALE => Ok(ApiRequest::Scale {
            app: text("app")?,
            replicas: number("replicas")?.ok_or("replicas: missing")?,
        }),
        verbs::APP_STOP => Ok(ApiRequest::StopApp(text("app")?)),
        verbs::APP_START => Ok(ApiRequest::StartApp(text("app")?)),
        verbs::JOB_STOP => {
            let job = text("job")?;
            let id = job
                .parse()
                .map_err(|_| format!("job: {job:?} is not a job id"))?;
            Ok(ApiRequest::StopJob(id))
        }
        other => Err(format!(
            "verb: {other:?} is not an action of the dashboard (app.rollback, app.scale, app.stop, app.start, job.stop)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_become_the_api_requests_they_name() {
        let rollback = action(br#"{"verb":"app.rollback","app":"web"}"#);
        assert_eq!(
            rollback,
            Ok(ApiRequest::Rollback {
                app: "web".into(),
                to: None
            })
        );
        let scale = action(br#"{"verb":"app.scale","app":"web","replicas":3}"#);
        assert_eq!(
            scale,
            Ok(ApiRequest::Scale {
                app: "web".into(),
                replicas: 3
            })
        );
        assert_eq!(
            action(br#"{"verb":"app.stop","app":"web"}"#),
            Ok(ApiRequest::StopApp("web".into()))
        );
    }

    #[test]
    fn bad_actions_name_what_is_wrong() {
        let cases: [(&[u8], &str); 6] = [
            (b"nope", "not JSON"),
            (br#"{"verb":"user.add"}"#, "not an action"),
            (br#"{"verb":"app.scale","app":"web"}"#, "replicas: missing"),
            (
                br#"{"verb":"app.scale","app":"web","replicas":-1}"#,
                "whole number",
            ),
            (br#"{"verb":"app.stop"}"#, "app: missing"),
            (br#"{"verb":"job.stop","job":"x"}"#, "not a job id"),
        ];
        for (body, expected) in cases {
            let error = action(body).expect_err("refused");
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn refusal_pages_escape_what_they_show() {
        assert_eq!(escape("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }
}
