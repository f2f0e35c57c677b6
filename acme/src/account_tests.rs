//! Tests for what `Account` checks before and around the network: settings,
//! stored credentials, and the timeout against a CA that never answers.

use std::time::{Duration, Instant};

use super::*;

/// Credentials as `Account::create` stores them, for a directory that does not exist.
fn credentials_for(directory: &str) -> String {
    serde_json::json!({
        "id": "https://acme.example/acct/1",
        "key_pkcs8": "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJVWC_QzOTCS5vtsJp2IG-UDc8cdDfeoKtxSZxaznM-mhRANCAAQenCPoGgPFTdPJ7VLLKt56RxPlYT1wNXnHc54PEyBg3LxKaH0-sJkX0mL8LyPEdsfL_Oz4TxHkWLJGrXVtNhfH",
        "directory": directory,
    })
    .to_string()
}

#[tokio::test]
async fn credentials_of_another_directory_are_refused() {
    let config = AcmeConfig::new(crate::LETS_ENCRYPT_PRODUCTION);
    let err = Account::load(&config, &credentials_for(crate::LETS_ENCRYPT_STAGING))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AcmeError::WrongDirectory { stored, configured }
            if stored == crate::LETS_ENCRYPT_STAGING && configured == crate::LETS_ENCRYPT_PRODUCTION),
        "{err}"
    );
}

#[tokio::test]
async fn unreadable_credentials_are_refused() {
    let config = AcmeConfig::new(crate::LETS_ENCRYPT_STAGING);
    for stored in ["", "not json", "{}", r#"{"directory": 7}"#] {
        let err = Account::load(&config, stored).await.unwrap_err();
        assert!(matches!(err, AcmeError::Credentials(_)), "{stored}: {err}");
        assert!(err.to_string().contains("create a new account"));
    }
}

#[tokio::test]
async fn bad_settings_fail_before_any_request() {
    let mut config = AcmeConfig::new("http://acme.example/dir");
    assert!(matches!(
        Account::create(&config).await,
        Err(AcmeError::Config(_))
    ));
    config.directory_url = crate::LETS_ENCRYPT_STAGING.to_string();
    config.ca_root_pem = Some("not a certificate".to_string());
    assert!(matches!(
        Account::create(&config).await,
        Err(AcmeError::CaRoot(_))
    ));
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_bound() {
    // Connections complete in the kernel's backlog, but nothing ever answers the TLS hello.
    let silent = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut config = AcmeConfig::new(format!("https://127.0.0.1:{port}/dir"));
    config.timeout = Duration::from_millis(500);

    let started = Instant::now();
    let err = Account::create(&config).await.unwrap_err();
    let elapsed = started.elapsed();

    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let message = err.to_string();
    assert!(
        matches!(err, AcmeError::Timeout { .. } | AcmeError::Server { .. }),
        "{message}"
    );
    assert!(message.contains("creating an account"), "{message}");
    drop(silent);
}
