#![allow(dead_code)] // each target uses some of these
//! Input layouts shared by the targets. A fuzzer cannot forge CRC32C, so
//! most inputs are sealed here: the fuzzer picks header fields and payload,
//! the target writes valid checksums, and the payload parser gets explored.

use _rust::codec::{BLOCK_HEADER_SIZE, MAGIC};
use _rust::crc::crc32c;

/// A block of `payload` with valid checksums.
pub fn seal(first_decree: u64, count: u32, payload: &[u8]) -> Vec<u8> {
    let mut block = Vec::with_capacity(BLOCK_HEADER_SIZE + payload.len());
    block.extend_from_slice(&MAGIC);
    block.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    block.extend_from_slice(&first_decree.to_le_bytes());
    block.extend_from_slice(&count.to_le_bytes());
    block.extend_from_slice(&crc32c(payload, 0).to_le_bytes());
    let header_crc = crc32c(&block, 0);
    block.extend_from_slice(&header_crc.to_le_bytes());
    block.extend_from_slice(payload);
    block
}

fn u64_at(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
    u64::from_le_bytes(a)
}

/// `[first_decree u64][count u32][payload]`, sealed (short input: zeros).
pub fn sealed(input: &[u8]) -> Vec<u8> {
    let first = u64_at(input);
    let count = u64_at(input.get(8..12).unwrap_or(&[])) as u32;
    seal(first, count, input.get(12..).unwrap_or(&[]))
}

/// Mode byte, then: odd, a block sealed from the rest; even, the rest as is.
pub fn block_of(input: &[u8]) -> Vec<u8> {
    match input.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => sealed(rest),
        Some((_, rest)) => rest.to_vec(),
        None => Vec::new(),
    }
}

/// A log file's bytes from records `[kind u8][len u16 LE][len bytes]`:
/// kind % 4 is 0 a sealed block, 1 raw bytes, 2 a sealed block cut in half
/// (a torn write), 3 `len` zero bytes (a preallocated tail).
pub fn log_of(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [kind, lo, hi, rest @ ..] = input {
        let len = usize::from(u16::from_le_bytes([*lo, *hi]));
        let (body, next) = rest.split_at(len.min(rest.len()));
        match kind % 4 {
            0 => out.extend_from_slice(&sealed(body)),
            1 => out.extend_from_slice(body),
            2 => {
                let block = sealed(body);
                out.extend_from_slice(&block[..block.len() / 2]);
            }
            _ => out.resize(out.len() + len.min(4096), 0),
        }
        input = next;
    }
    out
}
