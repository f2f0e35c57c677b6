//! Tests for the metered reader: the allowance is exact and a refusal is
//! recorded so it can be told apart from a corrupt stream.

use std::io::{self, Read};
use std::rc::Rc;

use super::*;

#[test]
fn unlimited_by_default() {
    let meter = Rc::new(Meter::default());
    let mut reader = MeteredReader::new(io::repeat(7).take(100_000), meter.clone());
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    assert_eq!(out.len(), 100_000);
    assert!(!meter.tripped());
}

#[test]
fn allowance_is_exact_and_trips() {
    let meter = Rc::new(Meter::default());
    let mut reader = MeteredReader::new(io::repeat(7), meter.clone());
    meter.allow(10);
    let mut buf = [0u8; 7];
    reader.read_exact(&mut buf).unwrap();
    assert_eq!(
        reader.read(&mut buf).unwrap(),
        3,
        "only the rest of the allowance"
    );
    assert!(!meter.tripped());
    assert!(reader.read(&mut buf).is_err());
    assert!(meter.tripped());
}

#[test]
fn lifting_the_allowance_resumes_reads() {
    let meter = Rc::new(Meter::default());
    let mut reader = MeteredReader::new(io::repeat(7), meter.clone());
    meter.allow(0);
    let mut buf = [0u8; 4];
    assert!(reader.read(&mut buf).is_err());
    meter.allow_unlimited();
    assert_eq!(reader.read(&mut buf).unwrap(), 4);
}
