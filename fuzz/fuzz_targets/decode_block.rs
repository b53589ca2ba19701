//! The WAL block decoder on arbitrary bytes: an error, or mutations that
//! encode back to exactly the same bytes (the decoder takes nothing the
//! format and the encoder do not allow). Never a panic.
#![no_main]

use _rust::codec::{decode_block, encode_block, mutation_writes};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|input: &[u8]| {
    let data = &common::block_of(input)[..];
    let Ok(mutations) = decode_block(data) else {
        return;
    };
    // Decoding never invents a mutation: each takes at least 21 payload bytes.
    assert!(mutations.len() <= data.len() / 21);
    let _ = mutation_writes(&mutations, 0);
    let _ = mutation_writes(&mutations, 3600);
    let block = encode_block(&mutations).expect("a decoded block re-encodes");
    assert_eq!(&block[..], data);
});
