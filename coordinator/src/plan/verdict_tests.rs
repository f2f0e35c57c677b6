use super::*;

fn result(stdout: char) -> JobResult {
    JobResult {
        stdout_sha256: stdout.to_string().repeat(64),
        outputs: Vec::new(),
    }
}

struct Copy {
    job: JobId,
    node: NodeId,
    dedicated: bool,
    state: JobState,
    result: Option<JobResult>,
}

/// A copy that exited with `code` and wrote stdout `stdout` (a digit).
fn exited(code: i32, stdout: char) -> Copy {
    Copy {
        job: JobId::new(),
        node: NodeId::new(),
        dedicated: false,
        state: JobState::Exited { code },
        result: Some(result(stdout)),
    }
}

fn dedicated(mut copy: Copy) -> Copy {
    copy.dedicated = true;
    copy
}

fn failed() -> Copy {
    Copy {
        state: JobState::Failed {
            reason: "out of memory".into(),
        },
        result: None,
        ..exited(0, '0')
    }
}

fn verdict(copies: &[Copy]) -> Verdict {
    let replies: Vec<Reply<'_>> = copies
        .iter()
        .map(|c| Reply {
            job: c.job,
            node: Some(c.node),
            dedicated: c.dedicated,
            state: &c.state,
            result: c.result.as_ref(),
        })
        .collect();
    decide(&replies, 7)
}

fn dissenters(v: &Verdict) -> Vec<NodeId> {
    match &v.outcome {
        Outcome::Disagreed { dissenters, .. } => dissenters.clone(),
        other => panic!("expected a disagreement, got {other:?}"),
    }
}

#[test]
fn identical_results_agree() {
    let copies = [exited(0, 'a'), exited(0, 'a'), exited(0, 'a')];
    let v = verdict(&copies);
    assert_eq!(
        v.outcome,
        Outcome::Agreed {
            fingerprint: fingerprint(0, &result('a'))
        }
    );
    assert_eq!(v.answers.len(), 3);
    assert_eq!(v.decided_at_ms, 7);
    assert!(tally(&v).iter().all(|(_, agreed)| *agreed));
}

#[test]
fn the_exit_code_stdout_and_files_all_count() {
    let a = fingerprint(0, &result('a'));
    assert_ne!(a, fingerprint(1, &result('a')));
    assert_ne!(a, fingerprint(0, &result('b')));
    let mut with_file = result('a');
    with_file.outputs = vec![("out".into(), Some("c".repeat(64)))];
    let mut missing = result('a');
    missing.outputs = vec![("out".into(), None)];
    assert_ne!(fingerprint(0, &with_file), fingerprint(0, &missing));
    assert_ne!(fingerprint(0, &with_file), a);
}

#[test]
fn the_minority_is_named() {
    let copies = [exited(0, 'a'), exited(0, 'b'), exited(0, 'a')];
    let v = verdict(&copies);
    assert_eq!(dissenters(&v), vec![copies[1].node]);
    assert_eq!(
        v.outcome.accepted(),
        Some(fingerprint(0, &result('a')).as_str())
    );
    let standing = tally(&v);
    assert_eq!(standing.len(), 3);
    assert!(standing.contains(&(copies[1].node, false)));
    assert!(standing.contains(&(copies[0].node, true)));
}

#[test]
fn a_tie_among_contributed_nodes_is_undecided_and_blames_nobody() {
    let v = verdict(&[exited(0, 'a'), exited(0, 'b')]);
    assert!(matches!(v.outcome, Outcome::Undecided { .. }), "{v:?}");
    assert!(tally(&v).is_empty());
    let v = verdict(&[exited(0, 'a'), exited(0, 'b'), exited(0, 'c')]);
    assert!(matches!(v.outcome, Outcome::Undecided { .. }), "{v:?}");
}

#[test]
fn without_a_majority_the_dedicated_nodes_decide() {
    let copies = [dedicated(exited(0, 'a')), exited(0, 'b')];
    let v = verdict(&copies);
    assert_eq!(dissenters(&v), vec![copies[1].node]);
    assert!(matches!(
        v.outcome,
        Outcome::Disagreed {
            by_dedicated: true,
            ..
        }
    ));
    // Two dedicated nodes that disagree decide nothing.
    let v = verdict(&[dedicated(exited(0, 'a')), dedicated(exited(0, 'b'))]);
    assert!(matches!(v.outcome, Outcome::Undecided { .. }), "{v:?}");
    // A majority wins even against a dedicated node.
    let copies = [dedicated(exited(0, 'a')), exited(0, 'b'), exited(0, 'b')];
    let v = verdict(&copies);
    assert_eq!(dissenters(&v), vec![copies[0].node]);
}

#[test]
fn copies_without_a_result_count_neither_way() {
    let copies = [exited(0, 'a'), failed(), exited(0, 'a')];
    let v = verdict(&copies);
    assert!(matches!(v.outcome, Outcome::Agreed { .. }), "{v:?}");
    assert_eq!(v.answers[1].fingerprint, None);
    assert_eq!(tally(&v).len(), 2, "the failed copy's node is not counted");
    let v = verdict(&[exited(0, 'a'), failed()]);
    assert_eq!(
        v.outcome,
        Outcome::Undecided {
            reason: "only 1 of 2 copies produced a result".into()
        }
    );
    // An exit without a result (its output could not be read) is no answer.
    let mut unread = exited(3, 'a');
    unread.result = None;
    let v = verdict(&[unread, exited(3, 'a')]);
    assert!(matches!(v.outcome, Outcome::Undecided { .. }));
    assert_eq!(v.answers[0].exit_code, Some(3));
}

#[test]
fn standing_is_the_share_of_disagreements() {
    let mut s = Standing::default();
    assert_eq!(s.distrust(), 0.0);
    s.count(false);
    assert_eq!(s.distrust(), 1.0);
    s.count(true);
    s.count(true);
    s.count(true);
    assert_eq!(s.distrust(), 0.25);
}
