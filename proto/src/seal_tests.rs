//! The command check, with a toy signature (a hash of the signed bytes)
//! standing in for ed25519: what matters here is the order and the
//! memory of the checks.

use super::*;
use proptest::prelude::*;

/// FNV-1a over every byte: changes with any byte of what is signed.
fn sign(bytes: &[u8]) -> Vec<u8> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
    }
    hash.to_be_bytes().to_vec()
}

fn verify(bytes: &[u8], signature: &[u8]) -> bool {
    sign(bytes) == signature
}

fn seal(node: NodeId, seq: u64, expires: u64, payload: &[u8]) -> Seal {
    let bytes = signed_bytes(MessageKind::AgentCommand, payload, node, seq, expires);
    Seal {
        node,
        seq,
        expires_at_ms: expires,
        signature: sign(&bytes),
    }
}

fn run(
    seal: Option<&Seal>,
    payload: &[u8],
    me: NodeId,
    now: u64,
    w: &mut ReplayWindow,
) -> Result<(), Refusal> {
    check(MessageKind::AgentCommand, payload, seal, me, now, w, verify)
}

#[test]
fn each_kind_of_bad_command_is_refused_for_its_reason() {
    let me = NodeId::new();
    let other = NodeId::new();
    let mut w = ReplayWindow::default();
    let good = seal(me, 1, 1_000, b"run");
    assert_eq!(run(None, b"run", me, 0, &mut w), Err(Refusal::Unsigned));
    assert_eq!(
        run(Some(&good), b"RUN", me, 0, &mut w),
        Err(Refusal::Forged)
    );
    let mut altered = good.clone();
    altered.expires_at_ms = 9_999;
    assert_eq!(
        run(Some(&altered), b"run", me, 0, &mut w),
        Err(Refusal::Forged)
    );
    let theirs = seal(other, 2, 1_000, b"run");
    assert_eq!(
        run(Some(&theirs), b"run", me, 0, &mut w),
        Err(Refusal::Misaddressed(other))
    );
    assert!(w.is_empty(), "nothing refused is remembered");
    assert_eq!(run(Some(&good), b"run", me, 10, &mut w), Ok(()));
    assert_eq!(
        run(Some(&good), b"run", me, 20, &mut w),
        Err(Refusal::Replayed(1))
    );
    let late = seal(me, 4, 1_000, b"run");
    assert_eq!(
        run(Some(&late), b"run", me, 1_000, &mut w),
        Err(Refusal::Expired(1_000))
    );
    // Forgotten once it expired, when it would be refused as expired anyway.
    assert_eq!(
        run(Some(&seal(me, 3, 2_000, b"x")), b"x", me, 1_500, &mut w),
        Ok(())
    );
    assert_eq!(w.len(), 1);
    // A clock that went back does not bring a forgotten command back to life.
    assert_eq!(
        run(Some(&good), b"run", me, 15, &mut w),
        Err(Refusal::Expired(1_000))
    );
}

proptest! {
    #[test]
    fn a_command_is_accepted_at_most_once_and_only_when_it_is_all_good(
        cmds in proptest::collection::vec((0u64..8, 0u64..3000, any::<bool>(), any::<bool>()), 1..60),
        times in proptest::collection::vec(0u64..3000, 60),
    ) {
        let me = NodeId::new();
        let other = NodeId::new();
        let mut w = ReplayWindow::default();
        let mut accepted = std::collections::BTreeSet::new();
        for ((seq, expires, mine, intact), now) in cmds.into_iter().zip(times) {
            let mut s = seal(if mine { me } else { other }, seq, expires, b"cmd");
            if !intact {
                s.signature[7] ^= 1;
            }
            let result = run(Some(&s), b"cmd", me, now, &mut w);
            if result.is_ok() {
                prop_assert!(mine && intact && now < expires);
                prop_assert!(accepted.insert((seq, expires)) || !accepted.iter().any(|(q, e)| *q == seq && *e > now),
                    "sequence {} accepted twice while both were good", seq);
            }
            if !intact {
                prop_assert_eq!(result, Err(Refusal::Forged));
            }
        }
    }
}
