//! The envelope every reef message travels in.
//!
//! Layout: the 4-byte magic `REEF`, then a postcard-encoded [`Envelope`]
//! carrying the protocol version, the message kind, the postcard-encoded payload
//! and an optional signature (filled in once assignments are signed). Decoding
//! never trusts the bytes: the size is checked before anything is parsed, the
//! kind must be the one the caller expects, and trailing bytes are refused.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// First bytes of every reef message.
pub const MAGIC: &[u8; 4] = b"REEF";
/// The protocol version this build speaks.
pub const VERSION: u16 = 3;
/// The reef release this build is.
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// The answer to a caller whose message is of protocol `theirs`, which
/// this build does not speak.
pub fn refuse_caller(theirs: u16) -> String {
    format!(
        "this cluster's coordinators speak reef protocol {VERSION} (reef {RELEASE}); the caller \
         speaks protocol {theirs}: every process of a cluster speaks one protocol, so upgrade \
         the servers first and then the nodes (docs/operations.md, Upgrades)"
    )
}

/// What to tell the user when the coordinators answered in protocol
/// `theirs`, which this build does not speak.
pub fn refuse_cluster(theirs: u16) -> String {
    format!(
        "the cluster's coordinators speak reef protocol {theirs}; this reef {RELEASE} speaks \
         protocol {VERSION}: use a reef release of protocol {theirs} here, or upgrade the \
         cluster (docs/operations.md, Upgrades)"
    )
}

/// The largest encoded message reef sends or accepts (the NATS default max payload).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// What a message is, so a message published on the wrong subject is refused
/// rather than misread as another type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum MessageKind {
    ApiRequest = 1,
    ApiReply = 2,
    AgentCommand = 3,
    AllocEvent = 4,
    Heartbeat = 5,
    JobRecord = 6,
    Allocation = 7,
    NodeRecord = 8,
    Release = 9,
    AppRecord = 10,
    Instance = 11,
    InstanceEvent = 12,
    LeaderLease = 13,
    AppRoutes = 14,
    CertRecord = 15,
    AcmeChallenge = 16,
    AcmeAttempts = 17,
    Member = 18,
    JoinToken = 19,
    NodeStatuses = 20,
    Checkpoint = 21,
    Server = 22,
    DoctorRequest = 23,
    DoctorReport = 24,
    CronRecord = 25,
    CronClaim = 26,
    AuditEntry = 27,
    ClusterEvent = 28,
    Webhook = 29,
    BackupRecord = 30,
    BackupRequest = 31,
    BackupAnswer = 32,
    ServiceRecord = 33,
}

/// A type that travels inside an envelope.
pub trait Message: Serialize + DeserializeOwned {
    const KIND: MessageKind;
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    version: u16,
    kind: MessageKind,
    payload: Vec<u8>,
    signature: Option<Vec<u8>>,
}

/// Failure to encode a message.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// message of {size} bytes is larger than the {max}-byte limit
    #[error("message of {size} bytes is larger than the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    /// the message could not be serialized
    #[error("message could not be serialized: {0}")]
    Serialize(#[from] postcard::Error),
}

/// Why bytes were not accepted as a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message of {size} bytes is larger than the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("not a reef message (bad magic bytes)")]
    BadMagic,
    #[error("malformed envelope: {0}")]
    Envelope(String),
    #[error("unsupported protocol version {got} (this build speaks {VERSION})")]
    Version { got: u16 },
    #[error("expected a {expected:?} message, got {got:?}")]
    WrongKind {
        expected: MessageKind,
        got: MessageKind,
    },
    #[error("malformed {kind:?} payload: {reason}")]
    Payload { kind: MessageKind, reason: String },
}

/// Encodes `msg` in an unsigned envelope.
pub fn encode<T: Message>(msg: &T) -> Result<Bytes, EncodeError> {
    wrap(Envelope {
        version: VERSION,
        kind: T::KIND,
        payload: postcard::to_stdvec(msg)?,
        signature: None,
    })
}

/// Encodes `msg` signed for `node` ([`crate::seal`]): `sign` signs the
/// bytes the seal covers with the cluster's assignment key.
pub fn encode_sealed<T: Message>(
    msg: &T,
    node: crate::NodeId,
    seq: u64,
    expires_at_ms: u64,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Result<Bytes, EncodeError> {
    let payload = postcard::to_stdvec(msg)?;
    let bytes = crate::seal::signed_bytes(T::KIND, &payload, node, seq, expires_at_ms);
    let seal = crate::seal::Seal {
        node,
        seq,
        expires_at_ms,
        signature: sign(&bytes),
    };
    wrap(Envelope {
        version: VERSION,
        kind: T::KIND,
        payload,
        signature: Some(postcard::to_stdvec(&seal)?),
    })
}

fn wrap(envelope: Envelope) -> Result<Bytes, EncodeError> {
    let mut out = MAGIC.to_vec();
    out.extend(postcard::to_stdvec(&envelope)?);
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(EncodeError::TooLarge {
            size: out.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    Ok(Bytes::from(out))
}

/// The kind of an enveloped message, for subjects that carry more than one.
/// Checks size, magic and version, not the payload.
pub fn peek_kind(bytes: &[u8]) -> Result<MessageKind, DecodeError> {
    let envelope = open(bytes)?;
    Ok(envelope.kind)
}

fn open(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    let body = bytes.strip_prefix(MAGIC).ok_or(DecodeError::BadMagic)?;
    let (envelope, rest): (Envelope, _) =
        postcard::take_from_bytes(body).map_err(|e| DecodeError::Envelope(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Envelope(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    if envelope.version != VERSION {
        return Err(DecodeError::Version {
            got: envelope.version,
        });
    }
    Ok(envelope)
}

/// Decodes a message of type `T`, refusing anything that is not exactly one.
pub fn decode<T: Message>(bytes: &[u8]) -> Result<T, DecodeError> {
    payload_of(&open(bytes)?)
}

/// A signed message: the message, its seal if it has one, and the payload
/// bytes the seal covers.
pub struct Sealed<T> {
    pub message: T,
    pub seal: Option<crate::seal::Seal>,
    pub payload: Vec<u8>,
}

/// Decodes a message of type `T` with its seal (not yet checked: see
/// [`crate::seal::check`]).
pub fn decode_sealed<T: Message>(bytes: &[u8]) -> Result<Sealed<T>, DecodeError> {
    let envelope = open(bytes)?;
    let message = payload_of(&envelope)?;
    let seal = match &envelope.signature {
        None => None,
        Some(raw) => {
            let (seal, rest) = postcard::take_from_bytes(raw)
                .map_err(|e| DecodeError::Envelope(format!("malformed seal: {e}")))?;
            if !rest.is_empty() {
                return Err(DecodeError::Envelope(
                    "malformed seal: trailing bytes".into(),
                ));
            }
            Some(seal)
        }
    };
    Ok(Sealed {
        message,
        seal,
        payload: envelope.payload,
    })
}

fn payload_of<T: Message>(envelope: &Envelope) -> Result<T, DecodeError> {
    if envelope.kind != T::KIND {
        return Err(DecodeError::WrongKind {
            expected: T::KIND,
            got: envelope.kind,
        });
    }
    let payload_error = |reason: String| DecodeError::Payload {
        kind: T::KIND,
        reason,
    };
    let (msg, rest) =
        postcard::take_from_bytes(&envelope.payload).map_err(|e| payload_error(e.to_string()))?;
    if !rest.is_empty() {
        return Err(payload_error(format!("{} trailing bytes", rest.len())));
    }
    Ok(msg)
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
