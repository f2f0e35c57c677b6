//! Who owns a domain: the app whose current release lists it. A route is a
//! host and a path prefix (`example.com/api`): two apps may share a host on
//! different prefixes, never one host and prefix. A release that would take
//! a route another app owns is refused, naming the owner,
//! so one app can never silently take another's traffic; moving a domain
//! is explicit (remove it from the owner's manifest and deploy the owner,
//! or destroy the owner, then deploy the new one).

use crate::drive::Coordinator;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::route_domain::RouteDomain;

/// A route as the proxy compares it: the host lowercase, without a trailing
/// dot; the prefix without a trailing `/`.
fn normalized(domain: &str) -> String {
    let route = RouteDomain::split(domain);
    format!("{}{}", route.host, route.prefix)
}

/// The domains in `wanted` that an app other than `app` owns, with that
/// app, in `wanted`'s order. `owned` is every app's current domains.
pub(crate) fn taken<'a>(
    app: &str,
    wanted: &[String],
    owned: &'a [(String, Vec<String>)],
) -> Vec<(String, &'a str)> {
    wanted
        .iter()
        .filter_map(|domain| {
            let domain = normalized(domain);
            owned
                .iter()
                .filter(|(owner, _)| owner != app)
                .find(|(_, domains)| domains.iter().any(|d| normalized(d) == domain))
                .map(|(owner, _)| (domain, owner.as_str()))
        })
        .collect()
}

/// The refusal for `taken`'s answer, if it found anything.
pub(crate) fn refusal(app: &str, taken: &[(String, &str)]) -> Option<ApiError> {
    let (domain, owner) = taken.first()?;
    let more = match taken.len() {
        1 => String::new(),
        n => format!(" (and {} more domain(s) of other apps)", n - 1),
    };
    Some(ApiError::new(
        ApiErrorKind::Invalid,
        format!(
            "{domain} belongs to app {owner}{more}: {app} may not take it. To move it, remove \
             it from {owner}'s Reef.toml and deploy {owner} (or destroy {owner}), then deploy {app}"
        ),
    ))
}

impl Coordinator {
    /// Refuses `domains` for `app` if another app owns one of them.
    pub(crate) async fn check_domains(
        &mut self,
        app: &str,
        domains: &[String],
    ) -> Result<(), ApiError> {
        if domains.is_empty() {
            return Ok(());
        }
        let apps = self.store.apps.all().await?;
        let mut owned = Vec::with_capacity(apps.len());
        for record in apps.into_iter().filter(|record| record.name != app) {
            let routing = self.release_routing(&record.name, record.version).await?;
            owned.push((record.name, routing.domains));
        }
        match refusal(app, &taken(app, domains, &owned)) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned() -> Vec<(String, Vec<String>)> {
        vec![
            (
                "hello".into(),
                vec!["hello.example".into(), "www.hello.example".into()],
            ),
            ("blog".into(), vec!["Blog.Example.".into()]),
        ]
    }

    #[test]
    fn another_apps_domain_is_taken_whatever_its_case_or_trailing_dot() {
        let owned = owned();
        let wanted = vec!["new.example".to_string(), "HELLO.example.".to_string()];
        assert_eq!(
            taken("dup", &wanted, &owned),
            vec![("hello.example".to_string(), "hello")]
        );
        assert_eq!(
            taken("dup", &["blog.example".to_string()], &owned),
            vec![("blog.example".to_string(), "blog")]
        );
        // An app's own domains are its own to keep.
        assert!(taken("hello", &["hello.example".to_string()], &owned).is_empty());
        assert!(taken("dup", &["free.example".to_string()], &owned).is_empty());
    }

    #[test]
    fn one_host_is_shared_on_different_prefixes_never_on_the_same_one() {
        let owned = vec![
            ("web".to_string(), vec!["shop.example".to_string()]),
            ("api".to_string(), vec!["shop.example/api".to_string()]),
            ("any".to_string(), vec!["*.shop.example".to_string()]),
        ];
        let wanted = |d: &str| vec![d.to_string()];
        assert!(taken("docs", &wanted("shop.example/docs"), &owned).is_empty());
        assert!(taken("v2", &wanted("shop.example/api/v2"), &owned).is_empty());
        assert!(taken("one", &wanted("a.shop.example"), &owned).is_empty());
        assert_eq!(
            taken("new", &wanted("Shop.Example./api"), &owned),
            vec![("shop.example/api".to_string(), "api")]
        );
        assert_eq!(
            taken("new", &wanted("shop.example/"), &owned),
            vec![("shop.example".to_string(), "web")]
        );
        assert_eq!(
            taken("new", &wanted("*.shop.example"), &owned),
            vec![("*.shop.example".to_string(), "any")]
        );
    }

    #[test]
    fn the_refusal_names_the_domain_its_owner_and_how_to_move_it() {
        let owned = owned();
        let wanted = vec!["www.hello.example".to_string(), "blog.example".to_string()];
        let error = refusal("dup", &taken("dup", &wanted, &owned)).expect("refused");
        assert_eq!(error.kind, ApiErrorKind::Invalid);
        assert!(
            error
                .message
                .starts_with("www.hello.example belongs to app hello (and 1 more"),
            "{error}"
        );
        assert!(error.message.contains("deploy hello"), "{error}");
        assert!(refusal("dup", &[]).is_none());
    }
}
