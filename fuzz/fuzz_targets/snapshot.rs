//! A logical snapshot as a follower takes it: one block that must hold
//! RAW_PUT ops only, turned into RocksDB writes. Never a panic.
#![no_main]

use _rust::codec::{decode_block, mutation_writes, Op};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|input: &[u8]| {
    let data = &common::block_of(input)[..];
    let Ok(mutations) = decode_block(data) else {
        return;
    };
    // Same rule as duplication/follower.py learn_snapshot.
    let raw_only = mutations
        .iter()
        .all(|m| m.ops.iter().all(|op| matches!(op, Op::RawPut { .. })));
    if !raw_only {
        return;
    }
    let writes = mutation_writes(&mutations, 0).expect("RAW_PUT writes need no timetag");
    let ops: usize = mutations.iter().map(|m| m.ops.len()).sum();
    // One write per op, plus the last-decree meta key.
    assert_eq!(writes.len(), ops + usize::from(!mutations.is_empty()));
    for ((key, value), op) in writes.iter().zip(mutations.iter().flat_map(|m| &m.ops)) {
        let Op::RawPut { key: k, value: v } = op else {
            unreachable!()
        };
        assert_eq!((key, value), (*k, Some(*v)));
    }
});
