//! The served data plane (DESIGN.md §11): Pegasus's client protocol in Rust.
//!
//! - `thrift`, `proto`: the codec, twin of `net/pegasus/` (the same bytes both ways);
//! - `server`: the tokio front end that batches requests for one consumer (the glue
//!   hands each batch to Python's `BatchHandler` taking the GIL once);
//! - `client`: the blocking client behind `pf.connect`'s data calls;
//! - `bench`: the load generator of `pegasus-fast bench served` (Pegasus or RESP).

pub mod bench;
pub mod client;
pub mod proto;
pub mod server;
pub mod thrift;
