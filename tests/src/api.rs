//! Direct API calls from tests, over the same NATS request/reply the CLI uses.

use reef_proto::api::{ApiReply, ApiRequest, ApiResponse};
use reef_proto::job::{JobRecord, JobSpec};
use reef_proto::{decode, encode, subjects};
use std::time::Duration;

/// The subject on which the admin credential ([`crate::NatsUrl::connect`]) calls `verb`.
pub fn admin_subject(verb: &str) -> String {
    subjects::api(reef_proto::roles::Role::Admin, "admin", verb)
}

/// Sends `request` as the admin and returns the coordinator's answer
/// (panics on transport errors).
pub async fn call(client: &async_nats::Client, request: ApiRequest) -> ApiReply {
    let subject = admin_subject(request.verb());
    let payload = encode(&request).expect("encode request");
    let reply = tokio::time::timeout(Duration::from_secs(10), client.request(subject, payload))
        .await
        .expect("API request timed out")
        .expect("API request failed");
    decode::<ApiReply>(&reply.payload).expect("decode reply")
}

/// Submits a job and returns its record.
pub async fn submit(client: &async_nats::Client, spec: JobSpec) -> JobRecord {
    match call(client, ApiRequest::SubmitJob(spec)).await.0 {
        Ok(ApiResponse::Job(job)) => *job,
        other => panic!("submit failed: {other:?}"),
    }
}

/// Every job the coordinator lists.
pub async fn jobs(client: &async_nats::Client) -> Vec<JobRecord> {
    match call(client, ApiRequest::ListJobs).await.0 {
        Ok(ApiResponse::Jobs { jobs, .. }) => jobs,
        other => panic!("list failed: {other:?}"),
    }
}

/// A job running `sh -c SCRIPT`.
pub fn shell(script: &str) -> JobSpec {
    JobSpec::new(vec!["sh".into(), "-c".into(), script.into()])
}

/// Like [`jobs`], but None when no coordinator answers (for example while one restarts).
pub async fn try_jobs(client: &async_nats::Client) -> Option<Vec<JobRecord>> {
    let payload = encode(&ApiRequest::ListJobs).ok()?;
    let reply = client
        .request(admin_subject(subjects::verbs::JOB_LIST), payload)
        .await
        .ok()?;
    match decode::<ApiReply>(&reply.payload).ok()?.0 {
        Ok(ApiResponse::Jobs { jobs, .. }) => Some(jobs),
        _ => None,
    }
}
