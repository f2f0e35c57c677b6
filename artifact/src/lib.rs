//! Release artifacts: packing, digests and safe unpacking (being built).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
