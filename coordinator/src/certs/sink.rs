//! [`KvChallenges`]: the ACME challenge sink of the cluster. An answer is
//! published as an [`AcmeChallenge`] in the challenges bucket under its token;
//! every agent watches the bucket and feeds its proxy, which answers the CA
//! on plain HTTP. Retracting deletes the key; the bucket's age limit removes
//! answers an interrupted order could not retract.

use crate::store::Bucket;
use reef_acme::{ChallengeSink, SinkError};
use reef_proto::certs::AcmeChallenge;

/// Publishes challenge answers to the challenges bucket. Once a put is
/// acknowledged every node can answer the CA: a node whose watch has not
/// delivered the answer yet reads it from the bucket.
#[derive(Clone)]
pub(crate) struct KvChallenges {
    pub(crate) challenges: Bucket<AcmeChallenge>,
}

/// ACME tokens are base64url (RFC 8555, section 8.3), which is also a valid KV key.
fn check_token(token: &str) -> Result<(), SinkError> {
    let ok = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("{token:?} is not a base64url ACME token").into())
    }
}

impl ChallengeSink for KvChallenges {
    async fn publish(&self, token: &str, key_authorization: &str) -> Result<(), SinkError> {
        check_token(token)?;
        let answer = AcmeChallenge {
            token: token.to_string(),
            key_authorization: key_authorization.to_string(),
            published_at_ms: reef_proto::now_ms(),
        };
        self.challenges.put(token, &answer).await?;
        Ok(())
    }

    async fn retract(&self, token: &str) -> Result<(), SinkError> {
        check_token(token)?;
        self.challenges.delete(token).await?;
        Ok(())
    }
}
