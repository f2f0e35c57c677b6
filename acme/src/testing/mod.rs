//! Test support for end-to-end ACME tests (feature `testing`): a real pebble
//! ACME server with its challenge DNS server, on free ports in a temp dir and
//! killed when dropped, and an HTTP-01 responder that answers from a
//! [`crate::MemoryChallenges`]. Other crates' tests use the same pieces:
//!
//! ```no_run
//! # async fn example() -> Result<(), reef_acme::testing::PebbleError> {
//! use reef_acme::testing::{ChallengeResponder, Pebble, PebbleOptions};
//! use reef_acme::{Account, MemoryChallenges};
//!
//! let answers = MemoryChallenges::new();
//! let responder = ChallengeResponder::start(answers.clone()).await?;
//! let pebble = Pebble::start(PebbleOptions::new(responder.port())).await?;
//! let (account, _credentials) = Account::create(&pebble.acme_config()).await?;
//! let issued = account.issue(&["app.reef.test".to_string()], &answers).await?;
//! # Ok(())
//! # }
//! ```
//!
//! - `pebble`: [`Pebble`], the launcher, and [`PebbleOptions`].
//! - `responder`: [`ChallengeResponder`], the HTTP-01 answering server.
//! - `process`: child processes killed on drop, free ports, bounded waits.

mod pebble;
mod process;
mod responder;

pub use pebble::{Pebble, PebbleError, PebbleOptions};
pub use responder::ChallengeResponder;
