//! The node proxy (being built).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
