//! One certificate order over HTTP-01, start to finish:
//!
//! 1. check the domains and create the order;
//! 2. publish the key authorization of every pending HTTP-01 challenge through
//!    the sink, and only then tell the CA that each is ready;
//! 3. poll the order, with backoff, until it is ready (or invalid: then find
//!    the domain whose challenge failed and the CA's reason);
//! 4. generate a fresh key pair, finalize with a signing request, poll for the
//!    certificate chain and check it is for that key;
//! 5. retract every published challenge, whatever happened.
//!
//! Steps 1 to 4 together are bounded by [`crate::AcmeConfig::timeout`]; on
//! timeout the error says which step was waiting. Step 5 has its own short
//! bound so that a stuck sink cannot hold the caller long.

use std::collections::HashSet;
use std::time::Duration;

use instant_acme::{
    AuthorizationStatus, ChallengeType, Identifier, NewOrder, Order, OrderStatus, Problem,
};

use crate::account::Account;
use crate::certificate::{assemble, key_and_csr, IssuedCertificate};
use crate::challenge::ChallengeSink;
use crate::domain::validate_domain;
use crate::error::AcmeError;

/// The most names one order may hold (Let's Encrypt's limit).
pub(crate) const MAX_DOMAINS: usize = 100;

/// The bound on retracting every challenge of one order.
const RETRACT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an order is, for the timeout message, and what must be retracted.
#[derive(Default)]
struct Progress {
    stage: String,
    published: Vec<String>,
}

pub(crate) async fn issue<S: ChallengeSink>(
    account: &Account,
    domains: &[String],
    sink: &S,
) -> Result<IssuedCertificate, AcmeError> {
    check_domains(domains)?;
    let timeout = account.config.timeout;
    let mut progress = Progress::default();
    let outcome = tokio::time::timeout(timeout, order(account, domains, sink, &mut progress)).await;
    retract(sink, &progress.published).await;
    match outcome {
        Ok(result) => result,
        Err(_) => Err(AcmeError::Timeout {
            action: progress.stage,
            timeout,
        }),
    }
}

/// Checks the names before anything is sent to the CA.
pub(crate) fn check_domains(domains: &[String]) -> Result<(), AcmeError> {
    if domains.is_empty() {
        return Err(AcmeError::NoDomains);
    }
    if domains.len() > MAX_DOMAINS {
        return Err(AcmeError::TooManyDomains {
            count: domains.len(),
            max: MAX_DOMAINS,
        });
    }
    let mut seen = HashSet::new();
    for domain in domains {
        validate_domain(domain)?;
        if !seen.insert(domain.as_str()) {
            return Err(AcmeError::DuplicateDomain {
                domain: domain.clone(),
            });
        }
    }
    Ok(())
}

/// One pending HTTP-01 challenge, as published.
struct Published {
    domain: String,
    token: String,
}

/// Maps a failed request to the CA to an error saying what was being done.
fn server_error(account: &Account, action: &str) -> impl FnOnce(instant_acme::Error) -> AcmeError {
    let directory_url = account.config.directory_url.clone();
    let action = action.to_string();
    move |source| AcmeError::Server {
        directory_url,
        action,
        source: Box::new(source),
    }
}

async fn order<S: ChallengeSink>(
    account: &Account,
    domains: &[String],
    sink: &S,
    progress: &mut Progress,
) -> Result<IssuedCertificate, AcmeError> {
    let all = domains.join(", ");

    progress.stage = format!("creating an order for {all}");
    let identifiers: Vec<Identifier> = domains.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .acme
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(server_error(account, &progress.stage))?;
    tracing::info!(domains = %all, order = order.url(), "ACME order created");

    progress.stage = format!("publishing the challenges for {all}");
    let pending = publish_challenges(account, &mut order, sink, progress).await?;
    set_ready(account, &mut order, &pending, progress).await?;

    let waiting_for: Vec<&str> = pending.iter().map(|p| p.domain.as_str()).collect();
    progress.stage = if waiting_for.is_empty() {
        format!("waiting for the order for {all} to become ready")
    } else {
        format!("waiting for the CA to validate {}", waiting_for.join(", "))
    };
    let mut backoff = Backoff::new();
    loop {
        let status = order
            .refresh()
            .await
            .map_err(server_error(account, &progress.stage))?
            .status;
        match status {
            OrderStatus::Ready => break,
            OrderStatus::Pending => tokio::time::sleep(backoff.next_delay()).await,
            OrderStatus::Invalid => return Err(why_invalid(&mut order, &all).await),
            OrderStatus::Processing | OrderStatus::Valid => {
                return Err(AcmeError::OrderFailed {
                    domains: all,
                    detail: format!("the order is {status:?} before it was finalized"),
                })
            }
        }
    }

    progress.stage = format!("finalizing the order for {all}");
    let (key, csr) = key_and_csr(domains)?;
    order
        .finalize_csr(&csr)
        .await
        .map_err(server_error(account, &progress.stage))?;

    progress.stage = format!("waiting for the CA to issue the certificate for {all}");
    let mut backoff = Backoff::new();
    let chain = loop {
        let ready = order
            .certificate()
            .await
            .map_err(server_error(account, &progress.stage))?;
        match ready {
            Some(chain) => break chain,
            None => tokio::time::sleep(backoff.next_delay()).await,
        }
    };
    let issued = assemble(domains, chain, &key)?;
    tracing::info!(domains = %all, not_after = ?issued.not_after, "certificate issued");
    Ok(issued)
}

/// Publishes the answer of every pending authorization's HTTP-01 challenge.
/// Authorizations the CA already holds as valid (reused) need nothing.
async fn publish_challenges<S: ChallengeSink>(
    account: &Account,
    order: &mut Order,
    sink: &S,
    progress: &mut Progress,
) -> Result<Vec<Published>, AcmeError> {
    let mut pending = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization =
            authorization.map_err(server_error(account, "fetching the order's authorizations"))?;
        let domain = authorization.identifier().to_string();
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            status => {
                return Err(AcmeError::ChallengeFailed {
                    domain,
                    detail: format!("the authorization is already {status:?}"),
                })
            }
        }
        let Some(challenge) = authorization.challenge(ChallengeType::Http01) else {
            return Err(AcmeError::NoHttpChallenge { domain });
        };
        let token = challenge.token.clone();
        let key_authorization = challenge.key_authorization();
        // Recorded before publishing, so that a publish that fails half-way is retracted too.
        progress.published.push(token.clone());
        sink.publish(&token, key_authorization.as_str())
            .await
            .map_err(|source| AcmeError::Publish {
                domain: domain.clone(),
                source,
            })?;
        pending.push(Published { domain, token });
    }
    Ok(pending)
}

/// Tells the CA to validate every published challenge. The authorizations
/// were fetched while publishing, so walking them again costs no request.
async fn set_ready(
    account: &Account,
    order: &mut Order,
    pending: &[Published],
    progress: &mut Progress,
) -> Result<(), AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization =
            authorization.map_err(server_error(account, "fetching the order's authorizations"))?;
        let Some(mut challenge) = authorization.challenge(ChallengeType::Http01) else {
            continue;
        };
        let Some(published) = pending.iter().find(|p| p.token == challenge.token) else {
            continue;
        };
        progress.stage = format!(
            "telling the CA that the challenge for {} is ready",
            published.domain
        );
        challenge
            .set_ready()
            .await
            .map_err(server_error(account, &progress.stage))?;
    }
    Ok(())
}

/// Finds out why the CA gave up on an order: the first authorization that
/// failed, with the problem its challenge reported.
async fn why_invalid(order: &mut Order, all: &str) -> AcmeError {
    let order_problem = order.state().error.clone();
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let Ok(mut authorization) = authorization else {
            continue;
        };
        if authorization.status != AuthorizationStatus::Valid
            && authorization.refresh().await.is_err()
        {
            continue;
        }
        if authorization.status == AuthorizationStatus::Invalid {
            let detail = authorization
                .challenges
                .iter()
                .find_map(|challenge| challenge.error.as_ref())
                .or(order_problem.as_ref())
                .map_or_else(
                    || "the authorization is invalid; the CA gave no reason".to_string(),
                    describe,
                );
            return AcmeError::ChallengeFailed {
                domain: authorization.identifier().to_string(),
                detail,
            };
        }
    }
    AcmeError::OrderFailed {
        domains: all.to_string(),
        detail: order_problem.as_ref().map_or_else(
            || "the order became invalid; the CA gave no reason".to_string(),
            describe,
        ),
    }
}

/// A CA problem document as one line: detail, type, then any subproblems.
pub(crate) fn describe(problem: &Problem) -> String {
    let mut text = problem
        .detail
        .clone()
        .unwrap_or_else(|| "no detail given".to_string());
    if let Some(kind) = &problem.r#type {
        text.push_str(&format!(" ({kind})"));
    }
    for subproblem in &problem.subproblems {
        text.push_str(&format!("; {subproblem}"));
    }
    text
}

/// Retracts every published challenge, within [`RETRACT_TIMEOUT`]. Failures
/// are logged, not returned: the certificate (or the original error) matters more.
async fn retract<S: ChallengeSink>(sink: &S, tokens: &[String]) {
    if tokens.is_empty() {
        return;
    }
    let all = async {
        for token in tokens {
            if let Err(error) = sink.retract(token).await {
                tracing::warn!(token, %error, "retracting an ACME challenge failed; it stays published until the store drops it");
            }
        }
    };
    if tokio::time::timeout(RETRACT_TIMEOUT, all).await.is_err() {
        tracing::warn!(
            count = tokens.len(),
            "retracting ACME challenges took longer than {RETRACT_TIMEOUT:?}; some stay published until the store drops them"
        );
    }
}

/// Delays between polls: 250 ms, doubling up to 4 s.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(4);

    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        delay
    }
}

#[cfg(test)]
#[path = "issue_tests.rs"]
mod tests;
