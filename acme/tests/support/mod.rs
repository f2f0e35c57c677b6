//! Shared pieces of the pebble tests: starting pebble with a responder (or
//! skipping when pebble is missing), sinks that misbehave on purpose, and
//! checks of the issued chain with rustls.

use std::sync::{Arc, Mutex};

use reef_acme::testing::{ChallengeResponder, Pebble, PebbleOptions};
use reef_acme::{ChallengeSink, MemoryChallenges, SinkError};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// A pebble and the responder it validates against.
pub struct Env {
    pub answers: MemoryChallenges,
    pub responder: ChallengeResponder,
    pub pebble: Pebble,
}

/// Starts pebble (options adjusted by `adjust`) with a responder serving
/// `answers`; `None`, with a notice, if pebble is not installed.
pub async fn start(adjust: impl FnOnce(&mut PebbleOptions)) -> Option<Env> {
    if !Pebble::installed() {
        eprintln!("SKIPPED: pebble is not installed; apt-get install -y pebble to run this test");
        return None;
    }
    let answers = MemoryChallenges::new();
    let responder = ChallengeResponder::start(answers.clone())
        .await
        .expect("start the HTTP-01 responder");
    let mut options = PebbleOptions::new(responder.port());
    adjust(&mut options);
    let pebble = Pebble::start(options).await.expect("start pebble");
    Some(Env {
        answers,
        responder,
        pebble,
    })
}

pub fn domains(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// What a [`RecordingSink`] does with a publish.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Stores the answer.
    Honest,
    /// Stores a wrong answer.
    WrongAnswer,
    /// Reports an error.
    Fail,
    /// Never completes.
    Hang,
}

/// A sink that stores into `store` as told, and records publishes and retractions.
#[derive(Clone)]
pub struct RecordingSink {
    store: MemoryChallenges,
    behaviour: Behaviour,
    published: Arc<Mutex<Vec<String>>>,
    retracted: Arc<Mutex<Vec<String>>>,
}

impl RecordingSink {
    pub fn new(store: MemoryChallenges, behaviour: Behaviour) -> Self {
        Self {
            store,
            behaviour,
            published: Arc::default(),
            retracted: Arc::default(),
        }
    }

    /// `count` tokens were published (or attempted), each retracted once, and none is left.
    pub fn assert_all_retracted(&self, count: usize) {
        let mut published = self.published.lock().expect("published log").clone();
        let mut retracted = self.retracted.lock().expect("retracted log").clone();
        assert_eq!(published.len(), count, "published {published:?}");
        published.sort();
        retracted.sort();
        assert_eq!(published, retracted);
        assert!(self.store.is_empty());
    }
}

impl ChallengeSink for RecordingSink {
    async fn publish(&self, token: &str, key_authorization: &str) -> Result<(), SinkError> {
        self.published
            .lock()
            .expect("published log")
            .push(token.to_string());
        match self.behaviour {
            Behaviour::Honest => self.store.publish(token, key_authorization).await,
            Behaviour::WrongAnswer => {
                self.store
                    .publish(token, &format!("{key_authorization}-wrong"))
                    .await
            }
            Behaviour::Fail => Err("the challenge store is down".into()),
            Behaviour::Hang => std::future::pending().await,
        }
    }

    async fn retract(&self, token: &str) -> Result<(), SinkError> {
        self.retracted
            .lock()
            .expect("retracted log")
            .push(token.to_string());
        self.store.retract(token).await
    }
}

/// Verifies `chain_pem` for `name` with rustls/webpki against `root_pem`.
pub fn assert_verifies(chain_pem: &str, root_pem: &str, name: &str) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots
            .add(root.expect("root PEM"))
            .expect("root certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .expect("verifier");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .map(|cert| cert.expect("chain PEM"))
        .collect();
    assert!(chain.len() >= 2, "expected a leaf and an intermediate");
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name.to_string()).expect("server name"),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

/// The private key belongs to the leaf certificate.
pub fn keys_match(chain_pem: &str, key_pem: &str) {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .map(|cert| cert.expect("chain PEM"))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).expect("signing key");
    CertifiedKey::new(chain, signing_key)
        .keys_match()
        .expect("the key belongs to the leaf certificate");
}
