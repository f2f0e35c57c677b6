//! `app.maintenance`: an app goes into maintenance (every node answers its
//! routes with 503 and a page) or comes out of it. The page is checked
//! here, whatever the caller checked; the record keeps it, so a new leader
//! routes it too, and the routes bucket carries it to every node. The
//! app's instances are not touched.

use crate::api::not_found;
use crate::drive::Coordinator;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::maintenance::{Maintenance, MaintenancePage};
use reef_proto::now_ms;

impl Coordinator {
    /// Puts `app` in maintenance with `page` (None: the default page), or
    /// takes it out when `on` is false.
    pub(crate) async fn set_maintenance(
        &mut self,
        app: &str,
        on: bool,
        page: Option<MaintenancePage>,
    ) -> Result<(), ApiError> {
        let maintenance = match on {
            true => Some(maintenance(page)?),
            false => None,
        };
        let now = now_ms();
        self.store
            .apps
            .modify(app, |record| {
                record.maintenance = maintenance.clone();
                record.updated_at_ms = now;
                true
            })
            .await?
            .ok_or_else(|| not_found(app))?;
        tracing::info!(%app, on, "maintenance");
        self.route_maintenance(app, maintenance.map(|m| m.page))
            .await;
        Ok(())
    }
}

/// The maintenance record for `page`, checked (None: the default page).
fn maintenance(page: Option<MaintenancePage>) -> Result<Maintenance, ApiError> {
    let custom_page = page.is_some();
    let page = page.unwrap_or_else(MaintenancePage::default_page);
    page.check()
        .map_err(|e| ApiError::new(ApiErrorKind::Invalid, e))?;
    Ok(Maintenance {
        page_bytes: page.body.len() as u64,
        custom_page,
        page,
        since_ms: now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_checked_and_the_default_one_stands_in_for_none() {
        let default = maintenance(None).expect("default page");
        assert!(!default.custom_page);
        assert_eq!(default.page, MaintenancePage::default_page());
        assert_eq!(default.page_bytes, default.page.body.len() as u64);
        let bad = MaintenancePage {
            content_type: "text/html; charset=utf-8".into(),
            body: vec![0xff],
        };
        let error = maintenance(Some(bad)).expect_err("not UTF-8");
        assert_eq!(error.kind, ApiErrorKind::Invalid);
        assert!(error.message.contains("UTF-8"), "{error}");
    }
}
