//! Signed commands. The leader signs every command to a node with the
//! cluster's assignment key (ed25519) over the message kind, the payload,
//! the node it is for, a sequence number and an expiry; the agent checks
//! the signature against the key its credential names, and refuses
//! unsigned, forged, misaddressed, expired and replayed commands. So even
//! a client that may publish on a node's subject (an admin, a compromised
//! server) cannot make a node run anything the leader did not sign.

use crate::envelope::MessageKind;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Separates these signatures from any other use of the key.
const DOMAIN: &[u8] = b"reef-command-v1";

/// How long a signed command stays good: a node away longer has its queued
/// commands refused, and the reconciler sends fresh ones.
pub const COMMAND_LIFETIME_MS: u64 = 24 * 3600 * 1000;

/// What travels in the envelope's signature field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub node: NodeId,
    /// Unique per command to a node; a second command with the same number is a replay.
    pub seq: u64,
    pub expires_at_ms: u64,
    pub signature: Vec<u8>,
}

/// The bytes a seal's signature covers.
pub fn signed_bytes(
    kind: MessageKind,
    payload: &[u8],
    node: NodeId,
    seq: u64,
    expires_at_ms: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + payload.len() + 41);
    out.extend_from_slice(DOMAIN);
    out.push(kind as u8);
    out.extend_from_slice(node.0.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&expires_at_ms.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it is not signed")]
    Unsigned,
    #[error("its signature is not the cluster's assignment key's (forged or altered)")]
    Forged,
    #[error("it is signed for node {0}, not this one")]
    Misaddressed(NodeId),
    #[error("it expired at {0} ms")]
    Expired(u64),
    #[error("it was already received (sequence {0}): a replay")]
    Replayed(u64),
}

impl Refusal {
    /// A short name, for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::Forged => "forged",
            Refusal::Misaddressed(_) => "misaddressed",
            Refusal::Expired(_) => "expired",
            Refusal::Replayed(_) => "replayed",
        }
    }
}

/// The commands a node accepted, remembered until they expire.
#[derive(Debug, Default)]
pub struct ReplayWindow {
    seen: BTreeMap<u64, u64>,
    /// The latest time it was told: time never goes back for it, so a
    /// command forgotten once it expired stays expired when the clock is
    /// set back.
    latest_ms: u64,
}

impl ReplayWindow {
    /// `now_ms`, or a later time it was told before.
    fn now(&mut self, now_ms: u64) -> u64 {
        self.latest_ms = self.latest_ms.max(now_ms);
        self.latest_ms
    }

    /// Records `seq` (good until `expires_at_ms`); false if it was seen.
    fn admit(&mut self, seq: u64, expires_at_ms: u64, now_ms: u64) -> bool {
        self.seen.retain(|_, expires| *expires > now_ms);
        if self.seen.contains_key(&seq) {
            return false;
        }
        self.seen.insert(seq, expires_at_ms);
        true
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Whether node `me` may act on a command of `kind` with `payload` and
/// `seal`, at `now_ms`; `verify(bytes, signature)` checks a signature
/// against the cluster's assignment key. An accepted command is remembered
/// in `window`.
pub fn check(
    kind: MessageKind,
    payload: &[u8],
    seal: Option<&Seal>,
    me: NodeId,
    now_ms: u64,
    window: &mut ReplayWindow,
    verify: impl Fn(&[u8], &[u8]) -> bool,
) -> Result<(), Refusal> {
    let seal = seal.ok_or(Refusal::Unsigned)?;
    let bytes = signed_bytes(kind, payload, seal.node, seal.seq, seal.expires_at_ms);
    if !verify(&bytes, &seal.signature) {
        return Err(Refusal::Forged);
    }
    if seal.node != me {
        return Err(Refusal::Misaddressed(seal.node));
    }
    let now_ms = window.now(now_ms);
    if now_ms >= seal.expires_at_ms {
        return Err(Refusal::Expired(seal.expires_at_ms));
    }
    if !window.admit(seal.seq, seal.expires_at_ms, now_ms) {
        return Err(Refusal::Replayed(seal.seq));
    }
    Ok(())
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
