//! Hot path of `pegasus_fast`: WAL codec and scan, replay, checkpoint copy
//! and hashing, partition hashing. The core modules know nothing of Python;
//! the `python` feature adds the PyO3 glue (`pegasus_fast._rust`).

pub mod codec;
pub mod crc;
pub mod digest;
pub mod error;
pub mod filecopy;
pub mod front;
pub mod logscan;
pub mod records;
pub mod syncpool;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
