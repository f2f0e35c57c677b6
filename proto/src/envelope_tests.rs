use super::*;
use crate::agent::{AgentCommand, Assignment};
use crate::api::ApiRequest;
use crate::job::JobSpec;
use crate::{AllocId, JobId, NodeId};
use proptest::prelude::*;

fn assignment() -> AgentCommand {
    AgentCommand::Run(Box::new(Assignment {
        alloc: AllocId::new(),
        job: JobId::new(),
        node: NodeId::new(),
        spec: JobSpec::new(vec!["sh".into(), "-c".into(), "echo hi".into()]),
        gpus: vec![0],
        issued_at_ms: 7,
    }))
}

#[test]
fn round_trip() {
    let cmd = assignment();
    let bytes = encode(&cmd).expect("encode");
    assert!(bytes.starts_with(MAGIC));
    assert_eq!(decode::<AgentCommand>(&bytes), Ok(cmd));
}

#[test]
fn a_message_of_another_kind_is_refused() {
    let bytes = encode(&ApiRequest::ListJobs).expect("encode");
    assert_eq!(
        decode::<AgentCommand>(&bytes),
        Err(DecodeError::WrongKind {
            expected: MessageKind::AgentCommand,
            got: MessageKind::ApiRequest
        })
    );
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let bytes = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert!(matches!(
        decode::<AgentCommand>(&bytes),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn oversized_messages_are_not_encoded() {
    let spec = JobSpec::new(vec!["x".repeat(MAX_MESSAGE_BYTES)]);
    assert!(matches!(
        encode(&ApiRequest::SubmitJob(spec)),
        Err(EncodeError::TooLarge { .. })
    ));
}

#[test]
fn trailing_bytes_and_other_versions_are_refused() {
    let mut bytes = encode(&ApiRequest::ListJobs).expect("encode").to_vec();
    bytes.push(0);
    assert!(matches!(
        decode::<ApiRequest>(&bytes),
        Err(DecodeError::Envelope(_))
    ));

    let mut out = MAGIC.to_vec();
    out.extend(
        postcard::to_stdvec(&Envelope {
            version: 99,
            kind: MessageKind::ApiRequest,
            payload: vec![1],
            signature: None,
        })
        .expect("encode"),
    );
    assert_eq!(
        decode::<ApiRequest>(&out),
        Err(DecodeError::Version { got: 99 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode::<AgentCommand>(&bytes);
        let _ = decode::<ApiRequest>(&bytes);
        let _ = decode::<crate::agent::AllocEvent>(&bytes);
        let _ = decode::<crate::node::Heartbeat>(&bytes);
        let _ = decode::<crate::api::ApiReply>(&bytes);
        let _ = decode::<crate::leader::LeaderLease>(&bytes);
    }

    #[test]
    fn arbitrary_payloads_in_a_valid_envelope_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
        kind in prop_oneof![
            Just(MessageKind::AgentCommand),
            Just(MessageKind::ApiRequest),
            Just(MessageKind::AllocEvent),
        ],
    ) {
        let mut out = MAGIC.to_vec();
        out.extend(postcard::to_stdvec(&Envelope { version: VERSION, kind, payload, signature: None }).expect("encode"));
        let _ = decode::<AgentCommand>(&out);
        let _ = decode::<ApiRequest>(&out);
        let _ = decode::<crate::agent::AllocEvent>(&out);
    }

    #[test]
    fn mutated_valid_messages_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = encode(&assignment()).expect("encode").to_vec();
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        let _ = decode::<AgentCommand>(&bytes);
    }
}
