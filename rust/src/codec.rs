//! WAL block codec (docs/wal-format.md) and the RocksDB records of mutations.
//!
//! Mutations are generic over their byte strings: encoding takes anything
//! that is `AsRef<[u8]>`; decoding borrows slices of the block buffer.

use std::ops::Range;

use crate::crc::crc32c;
use crate::error::{Error, Result};

pub const BLOCK_HEADER_SIZE: usize = 28;
pub const MAGIC: [u8; 4] = *b"PFW1";
/// Largest allowed `payload_len` (1 GiB).
pub const MAX_PAYLOAD: u32 = 1 << 30;

pub const OP_PUT: u8 = 0;
pub const OP_DELETE: u8 = 1;
pub const OP_MULTI_PUT: u8 = 2;
pub const OP_MULTI_DELETE: u8 = 3;
pub const OP_EMPTY: u8 = 4;
pub const OP_RAW_PUT: u8 = 5;
pub const OP_SOURCE_DECREE: u8 = 6;

/// Fixed part of a mutation: decree, timestamp_us, cluster_id, op_count.
const MUTATION_FIXED: usize = 8 + 8 + 1 + 4;
/// Most elements reserved up front from a length field read off the disk;
/// beyond it vectors grow as the elements actually parse.
const PREALLOC_CAP: usize = 4096;
/// Meta keys of the partition (see "RocksDB records").
/// Largest cluster id: it takes 7 bits of the timetag.
pub const MAX_CLUSTER_ID: u8 = 127;
pub const LAST_DECREE_KEY: &[u8] = b"\x00";
pub const SOURCE_DECREE_KEY: &[u8] = b"\x01";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<B> {
    Put {
        hash_key: B,
        sort_key: B,
        value: B,
        expire_ts: u32,
    },
    Delete {
        hash_key: B,
        sort_key: B,
    },
    MultiPut {
        hash_key: B,
        pairs: Vec<(B, B)>,
        expire_ts: u32,
    },
    MultiDelete {
        hash_key: B,
        sort_keys: Vec<B>,
    },
    Empty,
    RawPut {
        key: B,
        value: B,
    },
    SourceDecree(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation<B> {
    pub decree: u64,
    pub timestamp_us: u64,
    pub cluster_id: u8,
    pub ops: Vec<Op<B>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub payload_len: u32,
    pub first_decree: u64,
    pub mutation_count: u32,
    pub payload_crc: u32,
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Why a header does not check out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    BadMagic,
    BadHeaderCrc,
}

impl HeaderError {
    pub fn reason(self) -> &'static str {
        match self {
            HeaderError::BadMagic => "bad block magic",
            HeaderError::BadHeaderCrc => "block header checksum mismatch",
        }
    }
}

/// Parse and check (magic, header crc) the 28 header bytes.
pub fn parse_header(h: &[u8; BLOCK_HEADER_SIZE]) -> std::result::Result<BlockHeader, HeaderError> {
    if h[0..4] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if crc32c(&h[0..24], 0) != le_u32(&h[24..28]) {
        return Err(HeaderError::BadHeaderCrc);
    }
    Ok(BlockHeader {
        payload_len: le_u32(&h[4..8]),
        first_decree: le_u64(&h[8..16]),
        mutation_count: le_u32(&h[16..20]),
        payload_crc: le_u32(&h[20..24]),
    })
}

/// The outcome of looking at the block that starts at some offset of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No bytes left: clean end.
    End,
    /// A torn tail starts here.
    Torn(&'static str),
    /// Corruption at this offset.
    Corrupt(&'static str),
    /// The window must hold the file's bytes up to this absolute offset first.
    Need(u64),
    /// A block whose header and payload checksums hold. `payload` indexes the
    /// window; `end` is the absolute offset after the block.
    Block {
        header: BlockHeader,
        payload: Range<usize>,
        end: u64,
    },
}

/// Classify the block at absolute offset `pos` of a file of `size` bytes, per
/// "Reading, torn tails and corruption" rules 1-5 (rule 6, the payload parse,
/// is the caller's). `window` holds the file bytes `[base, base + len)`.
pub fn classify(window: &[u8], base: u64, pos: u64, size: u64) -> Step {
    debug_assert!(base <= pos && pos <= size);
    let window_end = base + window.len() as u64;
    let r = size - pos;
    if r == 0 {
        return Step::End;
    }
    if r < BLOCK_HEADER_SIZE as u64 {
        return Step::Torn("block header cut short");
    }
    if window_end < pos + BLOCK_HEADER_SIZE as u64 {
        return Step::Need(pos + BLOCK_HEADER_SIZE as u64);
    }
    let rel = (pos - base) as usize;
    let mut raw = [0u8; BLOCK_HEADER_SIZE];
    raw.copy_from_slice(&window[rel..rel + BLOCK_HEADER_SIZE]);
    let header = match parse_header(&raw) {
        Ok(h) => h,
        Err(err) => {
            if window_end < size {
                return Step::Need(size);
            }
            let tail = &window[rel..(size - base) as usize];
            return if tail.iter().all(|&b| b == 0) {
                Step::Torn("zero-filled tail")
            } else {
                Step::Corrupt(err.reason())
            };
        }
    };
    if header.payload_len > MAX_PAYLOAD {
        return Step::Corrupt("block payload over 1 GiB");
    }
    let end = pos + BLOCK_HEADER_SIZE as u64 + u64::from(header.payload_len);
    if end > size {
        return Step::Torn("block payload cut short");
    }
    if window_end < end {
        return Step::Need(end);
    }
    let payload = rel + BLOCK_HEADER_SIZE..(end - base) as usize;
    if crc32c(&window[payload.clone()], 0) != header.payload_crc {
        return if end == size {
            Step::Torn("payload checksum mismatch in the last block")
        } else {
            Step::Corrupt("payload checksum mismatch")
        };
    }
    Step::Block {
        header,
        payload,
        end,
    }
}

/// Bounds-checked little-endian reader over a payload.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

const RUNS_PAST: &str = "field runs past the payload";

impl<'a> Reader<'a> {
    #[inline]
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], &'static str> {
        if n > self.remaining() {
            return Err(RUNS_PAST);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn u8(&mut self) -> std::result::Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    #[inline]
    fn u16(&mut self) -> std::result::Result<u16, &'static str> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    #[inline]
    fn u32(&mut self) -> std::result::Result<u32, &'static str> {
        Ok(le_u32(self.take(4)?))
    }

    #[inline]
    fn u64(&mut self) -> std::result::Result<u64, &'static str> {
        Ok(le_u64(self.take(8)?))
    }

    #[inline]
    fn hk(&mut self) -> std::result::Result<&'a [u8], &'static str> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    #[inline]
    fn b32(&mut self) -> std::result::Result<&'a [u8], &'static str> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// One op; when `build` is false the lists of multi ops stay empty (validation only).
fn parse_op<'a>(
    r: &mut Reader<'a>,
    build: bool,
) -> std::result::Result<Op<&'a [u8]>, &'static str> {
    let kind = r.u8()?;
    Ok(match kind {
        OP_PUT => {
            let hash_key = r.hk()?;
            let sort_key = r.b32()?;
            let value = r.b32()?;
            let expire_ts = r.u32()?;
            Op::Put {
                hash_key,
                sort_key,
                value,
                expire_ts,
            }
        }
        OP_DELETE => {
            let hash_key = r.hk()?;
            let sort_key = r.b32()?;
            Op::Delete { hash_key, sort_key }
        }
        OP_MULTI_PUT => {
            let hash_key = r.hk()?;
            let expire_ts = r.u32()?;
            let n = r.u32()? as usize;
            // Each pair takes at least 8 bytes: never trust n for an allocation.
            if n > r.remaining() / 8 {
                return Err("multi_put count larger than the payload");
            }
            let mut pairs = Vec::with_capacity(if build { n.min(PREALLOC_CAP) } else { 0 });
            for _ in 0..n {
                let sk = r.b32()?;
                let v = r.b32()?;
                if build {
                    pairs.push((sk, v));
                }
            }
            Op::MultiPut {
                hash_key,
                pairs,
                expire_ts,
            }
        }
        OP_MULTI_DELETE => {
            let hash_key = r.hk()?;
            let n = r.u32()? as usize;
            if n > r.remaining() / 4 {
                return Err("multi_delete count larger than the payload");
            }
            let mut sort_keys = Vec::with_capacity(if build { n.min(PREALLOC_CAP) } else { 0 });
            for _ in 0..n {
                let sk = r.b32()?;
                if build {
                    sort_keys.push(sk);
                }
            }
            Op::MultiDelete {
                hash_key,
                sort_keys,
            }
        }
        OP_EMPTY => Op::Empty,
        OP_RAW_PUT => {
            let key = r.b32()?;
            let value = r.b32()?;
            Op::RawPut { key, value }
        }
        OP_SOURCE_DECREE => Op::SourceDecree(r.u64()?),
        _ => return Err("unknown op type"),
    })
}

/// What a payload held, whether or not its mutations were kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayloadSummary {
    /// Decrees of the first and last mutation; `None` for an empty payload.
    pub decrees: Option<(u64, u64)>,
    /// Largest decree in the payload.
    pub max_decree: Option<u64>,
}

/// Parse a payload of `count` mutations (rule 6). Mutations with
/// `decree >= start_decree` are appended to `out` when it is given; without
/// `out` this only validates.
pub fn parse_payload<'a>(
    payload: &'a [u8],
    count: u32,
    start_decree: u64,
    mut out: Option<&mut Vec<Mutation<&'a [u8]>>>,
) -> std::result::Result<PayloadSummary, &'static str> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let count = count as usize;
    if count == 0 {
        return Err("a block holds at least one mutation");
    }
    if count > payload.len() / MUTATION_FIXED {
        return Err("mutation count larger than the payload");
    }
    if let Some(out) = out.as_deref_mut() {
        out.reserve(count.min(PREALLOC_CAP));
    }
    let mut decrees: Option<(u64, u64)> = None;
    let mut max_decree: Option<u64> = None;
    for _ in 0..count {
        let decree = r.u64()?;
        let timestamp_us = r.u64()?;
        let cluster_id = r.u8()?;
        if cluster_id > MAX_CLUSTER_ID {
            // It would spill into the timestamp bits of the timetag.
            return Err("cluster_id over 127");
        }
        let op_count = r.u32()? as usize;
        if op_count > r.remaining() {
            return Err("op count larger than the payload");
        }
        let keep = out.is_some() && decree >= start_decree;
        let mut ops = Vec::with_capacity(if keep { op_count.min(PREALLOC_CAP) } else { 0 });
        for _ in 0..op_count {
            let op = parse_op(&mut r, keep)?;
            if keep {
                ops.push(op);
            }
        }
        decrees = Some(match decrees {
            None => (decree, decree),
            Some((first, _)) => (first, decree),
        });
        max_decree = Some(max_decree.map_or(decree, |m: u64| m.max(decree)));
        if keep {
            if let Some(out) = out.as_deref_mut() {
                out.push(Mutation {
                    decree,
                    timestamp_us,
                    cluster_id,
                    ops,
                });
            }
        }
    }
    if r.pos != payload.len() {
        return Err("payload longer than its mutations");
    }
    Ok(PayloadSummary {
        decrees,
        max_decree,
    })
}

/// The header's `first_decree` must be the decree of the payload's first
/// mutation (rule 6): a reader that trusts either finds the same decree.
pub fn check_first_decree(
    header: &BlockHeader,
    summary: &PayloadSummary,
) -> std::result::Result<(), &'static str> {
    match summary.decrees {
        Some((first, _)) if first == header.first_decree => Ok(()),
        _ => Err("first_decree differs from the first mutation's decree"),
    }
}

/// Where a caller-supplied buffer is named in errors (as the Python twin does).
pub const BUFFER_PATH: &str = "<buffer>";

fn buffer_corruption(reason: &str) -> Error {
    buffer_corruption_at(0, reason)
}

fn buffer_corruption_at(offset: u64, reason: &str) -> Error {
    Error::Corruption {
        path: BUFFER_PATH.to_string(),
        offset,
        reason: reason.to_string(),
    }
}

/// The mutations of `data`, which must be exactly one whole block.
pub fn decode_block(data: &[u8]) -> Result<Vec<Mutation<&[u8]>>> {
    let size = data.len() as u64;
    match classify(data, 0, 0, size) {
        Step::Block {
            header,
            payload,
            end,
        } => {
            if end != size {
                return Err(buffer_corruption("not exactly one block"));
            }
            let mut out = Vec::new();
            let summary = parse_payload(&data[payload], header.mutation_count, 0, Some(&mut out))
                .map_err(buffer_corruption)?;
            check_first_decree(&header, &summary).map_err(buffer_corruption)?;
            Ok(out)
        }
        Step::End => Err(buffer_corruption("empty buffer")),
        Step::Torn(reason) | Step::Corrupt(reason) => Err(buffer_corruption(reason)),
        Step::Need(_) => Err(buffer_corruption("not exactly one block")),
    }
}

/// The mutations of `data`, a run of whole blocks back to back (a shipped
/// batch: WAL blocks as stored). Unlike a log file, a batch has no torn tail:
/// a cut or damaged block anywhere is corruption at its offset.
pub fn decode_blocks(data: &[u8]) -> Result<Vec<Mutation<&[u8]>>> {
    let size = data.len() as u64;
    let mut pos = 0u64;
    let mut out = Vec::new();
    loop {
        match classify(data, 0, pos, size) {
            Step::End => return Ok(out),
            Step::Block {
                header,
                payload,
                end,
            } => {
                parse_payload(&data[payload], header.mutation_count, 0, Some(&mut out))
                    .map_err(|reason| buffer_corruption_at(pos, reason))?;
                pos = end;
            }
            Step::Torn(reason) | Step::Corrupt(reason) => {
                return Err(buffer_corruption_at(pos, reason))
            }
            Step::Need(_) => return Err(buffer_corruption_at(pos, "block cut short")),
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

fn hk_len(hash_key: &[u8]) -> Result<usize> {
    check_hash_key(hash_key, usize::from(u16::MAX))?;
    Ok(2 + hash_key.len())
}

/// The longest hash key a record may have. Pegasus refuses 65535 bytes and
/// more (`CHECK_LT(hash_key.length(), UINT16_MAX)` when it builds a RocksDB
/// key), although the u16 length field of the WAL and of the key could hold
/// 65535.
pub const MAX_HASH_KEY: usize = 65534;

fn check_hash_key(hash_key: &[u8], max: usize) -> Result<()> {
    if hash_key.len() > max {
        return Err(invalid(format!("hash_key longer than {max} bytes")));
    }
    Ok(())
}

fn b32_len(data: &[u8]) -> Result<usize> {
    if data.len() > u32::MAX as usize {
        return Err(invalid("byte string longer than 4 GiB"));
    }
    Ok(4 + data.len())
}

fn count_u32(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| invalid(format!("too many {what}")))
}

/// Encoded size of one op (after validating its lengths).
fn op_size<B: AsRef<[u8]>>(op: &Op<B>) -> Result<u64> {
    let n = match op {
        Op::Put {
            hash_key,
            sort_key,
            value,
            ..
        } => {
            1 + hk_len(hash_key.as_ref())?
                + b32_len(sort_key.as_ref())?
                + b32_len(value.as_ref())?
                + 4
        }
        Op::Delete { hash_key, sort_key } => {
            1 + hk_len(hash_key.as_ref())? + b32_len(sort_key.as_ref())?
        }
        Op::MultiPut {
            hash_key, pairs, ..
        } => {
            count_u32(pairs.len(), "multi_put pairs")?;
            let mut n = (1 + hk_len(hash_key.as_ref())? + 8) as u64;
            for (sk, v) in pairs {
                n += (b32_len(sk.as_ref())? + b32_len(v.as_ref())?) as u64;
            }
            return Ok(n);
        }
        Op::MultiDelete {
            hash_key,
            sort_keys,
        } => {
            count_u32(sort_keys.len(), "multi_delete sort keys")?;
            let mut n = (1 + hk_len(hash_key.as_ref())? + 4) as u64;
            for sk in sort_keys {
                n += b32_len(sk.as_ref())? as u64;
            }
            return Ok(n);
        }
        Op::Empty => 1,
        Op::RawPut { key, value } => 1 + b32_len(key.as_ref())? + b32_len(value.as_ref())?,
        Op::SourceDecree(_) => 9,
    };
    Ok(n as u64)
}

/// Where encoded bytes go: a growing `Vec` or a preallocated slice.
trait Sink {
    fn put(&mut self, b: &[u8]);
    fn push(&mut self, b: u8) {
        self.put(&[b]);
    }
    fn extend_from_slice(&mut self, b: &[u8]) {
        self.put(b);
    }
}

/// Writes into a slice sized by [`encoded_block_len`].
struct SliceSink<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Sink for SliceSink<'_> {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
}

fn put_hk(out: &mut impl Sink, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_b32(out: &mut impl Sink, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_op<B: AsRef<[u8]>>(out: &mut impl Sink, op: &Op<B>) {
    match op {
        Op::Put {
            hash_key,
            sort_key,
            value,
            expire_ts,
        } => {
            out.push(OP_PUT);
            put_hk(out, hash_key.as_ref());
            put_b32(out, sort_key.as_ref());
            put_b32(out, value.as_ref());
            out.extend_from_slice(&expire_ts.to_le_bytes());
        }
        Op::Delete { hash_key, sort_key } => {
            out.push(OP_DELETE);
            put_hk(out, hash_key.as_ref());
            put_b32(out, sort_key.as_ref());
        }
        Op::MultiPut {
            hash_key,
            pairs,
            expire_ts,
        } => {
            out.push(OP_MULTI_PUT);
            put_hk(out, hash_key.as_ref());
            out.extend_from_slice(&expire_ts.to_le_bytes());
            out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
            for (sk, v) in pairs {
                put_b32(out, sk.as_ref());
                put_b32(out, v.as_ref());
            }
        }
        Op::MultiDelete {
            hash_key,
            sort_keys,
        } => {
            out.push(OP_MULTI_DELETE);
            put_hk(out, hash_key.as_ref());
            out.extend_from_slice(&(sort_keys.len() as u32).to_le_bytes());
            for sk in sort_keys {
                put_b32(out, sk.as_ref());
            }
        }
        Op::Empty => out.push(OP_EMPTY),
        Op::RawPut { key, value } => {
            out.push(OP_RAW_PUT);
            put_b32(out, key.as_ref());
            put_b32(out, value.as_ref());
        }
        Op::SourceDecree(decree) => {
            out.push(OP_SOURCE_DECREE);
            out.extend_from_slice(&decree.to_le_bytes());
        }
    }
}

/// Size of the block holding `mutations`, after checking that they can be
/// encoded (at least one, cluster ids, lengths, the 1 GiB payload limit).
pub fn encoded_block_len<B: AsRef<[u8]>>(mutations: &[Mutation<B>]) -> Result<usize> {
    if mutations.is_empty() {
        return Err(invalid("a block holds at least one mutation"));
    }
    count_u32(mutations.len(), "mutations in a block")?;
    let mut size: u64 = 0;
    for m in mutations {
        if m.cluster_id > MAX_CLUSTER_ID {
            return Err(invalid("cluster_id must be in 0..127"));
        }
        count_u32(m.ops.len(), "ops in a mutation")?;
        size += MUTATION_FIXED as u64;
        for op in &m.ops {
            size += op_size(op)?;
        }
        if size > u64::from(MAX_PAYLOAD) {
            return Err(invalid("block payload over 1 GiB"));
        }
    }
    Ok(BLOCK_HEADER_SIZE + size as usize)
}

/// Encode the block of `mutations` into `out`, which must be exactly
/// [`encoded_block_len`] bytes long (checked first).
pub fn encode_block_into<B: AsRef<[u8]>>(mutations: &[Mutation<B>], out: &mut [u8]) -> Result<()> {
    let len = encoded_block_len(mutations)?;
    if out.len() != len {
        return Err(invalid("block buffer of the wrong size"));
    }
    let (header, payload) = out.split_at_mut(BLOCK_HEADER_SIZE);
    let mut sink = SliceSink {
        buf: payload,
        pos: 0,
    };
    for m in mutations {
        sink.put(&m.decree.to_le_bytes());
        sink.put(&m.timestamp_us.to_le_bytes());
        sink.push(m.cluster_id);
        sink.put(&(m.ops.len() as u32).to_le_bytes());
        for op in &m.ops {
            put_op(&mut sink, op);
        }
    }
    debug_assert_eq!(sink.pos, sink.buf.len());
    let payload_crc = crc32c(payload, 0);
    header[0..4].copy_from_slice(&MAGIC);
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..16].copy_from_slice(&mutations[0].decree.to_le_bytes());
    header[16..20].copy_from_slice(&(mutations.len() as u32).to_le_bytes());
    header[20..24].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c(&header[0..24], 0);
    header[24..28].copy_from_slice(&header_crc.to_le_bytes());
    Ok(())
}

/// One checksummed block holding `mutations` (at least one).
pub fn encode_block<B: AsRef<[u8]>>(mutations: &[Mutation<B>]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; encoded_block_len(mutations)?];
    encode_block_into(mutations, &mut out)?;
    Ok(out)
}

/// RocksDB writes in one arena: `buf` holds every key and value back to back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Writes {
    pub buf: Vec<u8>,
    /// (key start, key end = value start, value end or `None` for a delete)
    pub items: Vec<(usize, usize, Option<usize>)>,
}

impl Writes {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], Option<&[u8]>)> + '_ {
        self.items
            .iter()
            .map(move |&(k, v, e)| (&self.buf[k..v], e.map(|e| &self.buf[v..e])))
    }

    fn key(&self, item: &(usize, usize, Option<usize>)) -> &[u8] {
        &self.buf[item.0..item.1]
    }

    /// Reduce to the net effect of applying every write in order: one write
    /// per key (the last), in key order. RocksDB inserts sorted keys into its
    /// memtable far faster than random ones, which is what replay needs.
    pub fn net_sorted(&mut self) {
        let mut items = std::mem::take(&mut self.items);
        // a stable sort keeps equal keys in write order, so the last of a run wins
        items.sort_by(|a, b| self.key(a).cmp(self.key(b)));
        let mut out: Vec<(usize, usize, Option<usize>)> = Vec::with_capacity(items.len());
        for item in items {
            match out.last_mut() {
                Some(prev) if self.buf[prev.0..prev.1] == self.buf[item.0..item.1] => *prev = item,
                _ => out.push(item),
            }
        }
        self.items = out;
    }

    fn start(&mut self) -> usize {
        self.buf.len()
    }

    fn key_end(&mut self) -> usize {
        self.buf.len()
    }

    fn push_key(&mut self, hash_key: &[u8], sort_key: &[u8]) {
        self.buf
            .extend_from_slice(&(hash_key.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(hash_key);
        self.buf.extend_from_slice(sort_key);
    }

    fn push_value(&mut self, expire_ts: u32, timetag: u64, value: &[u8]) {
        self.buf.extend_from_slice(&expire_ts.to_be_bytes());
        self.buf.extend_from_slice(&timetag.to_be_bytes());
        self.buf.extend_from_slice(value);
    }

    fn put(
        &mut self,
        hash_key: &[u8],
        sort_key: &[u8],
        expire_ts: u32,
        timetag: u64,
        value: &[u8],
    ) {
        let s = self.start();
        self.push_key(hash_key, sort_key);
        let k = self.key_end();
        self.push_value(expire_ts, timetag, value);
        self.items.push((s, k, Some(self.buf.len())));
    }

    fn delete(&mut self, hash_key: &[u8], sort_key: &[u8]) {
        let s = self.start();
        self.push_key(hash_key, sort_key);
        self.items.push((s, self.buf.len(), None));
    }

    fn raw(&mut self, key: &[u8], value: &[u8]) {
        let s = self.start();
        self.buf.extend_from_slice(key);
        let k = self.key_end();
        self.buf.extend_from_slice(value);
        self.items.push((s, k, Some(self.buf.len())));
    }
}

fn timetag(m_timestamp_us: u64, cluster_id: u8) -> Result<u64> {
    if m_timestamp_us >= 1 << 56 {
        return Err(invalid("timestamp_us does not fit a timetag (>= 2^56)"));
    }
    Ok((m_timestamp_us << 8) | (u64::from(cluster_id) << 1))
}

/// Seconds from the Unix epoch to Pegasus's expire_ts epoch (2016-01-01 00:00:00 UTC).
pub const PEGASUS_EPOCH_BEGIN: u64 = 1_451_606_400;

/// The expire_ts of a delete's tombstone: `tombstone_seconds` after the delete was first
/// written (from its timestamp, so a replay writes the very same bytes).
fn tombstone_expire(timestamp_us: u64, tombstone_seconds: u32) -> u32 {
    let at = (timestamp_us / 1_000_000).saturating_sub(PEGASUS_EPOCH_BEGIN);
    let expire = at.saturating_add(u64::from(tombstone_seconds)).max(1);
    u32::try_from(expire).unwrap_or(u32::MAX)
}

/// RocksDB writes applying `mutations` in order, then the last-decree meta key.
/// A hash key longer than [`MAX_HASH_KEY`] is refused, as Pegasus refuses it.
/// With `tombstone_seconds > 0` a delete writes a tombstone instead of removing the
/// record: an empty value whose timetag has the delete bit set, expiring that many
/// seconds later, so last-writer-wins can refuse an older put that arrives after it.
pub fn mutation_writes<B: AsRef<[u8]>>(
    mutations: &[Mutation<B>],
    tombstone_seconds: u32,
) -> Result<Writes> {
    let mut w = Writes::default();
    mutation_writes_into(mutations, &mut w, MAX_HASH_KEY, tombstone_seconds)?;
    Ok(w)
}

/// Like [`mutation_writes`], for replaying a WAL: hash keys up to the WAL
/// format's 65535 bytes are taken, so a log written before the Pegasus limit
/// was enforced still opens and nothing it holds is lost.
pub fn replay_writes<B: AsRef<[u8]>>(
    mutations: &[Mutation<B>],
    tombstone_seconds: u32,
) -> Result<Writes> {
    let mut w = Writes::default();
    mutation_writes_into(mutations, &mut w, usize::from(u16::MAX), tombstone_seconds)?;
    Ok(w)
}

fn mutation_writes_into<B: AsRef<[u8]>>(
    mutations: &[Mutation<B>],
    w: &mut Writes,
    max_hash_key: usize,
    tombstone_seconds: u32,
) -> Result<()> {
    for m in mutations {
        for op in &m.ops {
            match op {
                Op::Put {
                    hash_key,
                    sort_key,
                    value,
                    expire_ts,
                } => {
                    check_hash_key(hash_key.as_ref(), max_hash_key)?;
                    let tt = timetag(m.timestamp_us, m.cluster_id)?;
                    w.put(
                        hash_key.as_ref(),
                        sort_key.as_ref(),
                        *expire_ts,
                        tt,
                        value.as_ref(),
                    );
                }
                Op::Delete { hash_key, sort_key } => {
                    check_hash_key(hash_key.as_ref(), max_hash_key)?;
                    if tombstone_seconds > 0 {
                        let tt = timetag(m.timestamp_us, m.cluster_id)? | 1;
                        let expire = tombstone_expire(m.timestamp_us, tombstone_seconds);
                        w.put(hash_key.as_ref(), sort_key.as_ref(), expire, tt, &[]);
                    } else {
                        w.delete(hash_key.as_ref(), sort_key.as_ref());
                    }
                }
                Op::MultiPut {
                    hash_key,
                    pairs,
                    expire_ts,
                } => {
                    check_hash_key(hash_key.as_ref(), max_hash_key)?;
                    let tt = timetag(m.timestamp_us, m.cluster_id)?;
                    for (sk, v) in pairs {
                        w.put(hash_key.as_ref(), sk.as_ref(), *expire_ts, tt, v.as_ref());
                    }
                }
                Op::MultiDelete {
                    hash_key,
                    sort_keys,
                } => {
                    check_hash_key(hash_key.as_ref(), max_hash_key)?;
                    if tombstone_seconds > 0 {
                        let tt = timetag(m.timestamp_us, m.cluster_id)? | 1;
                        let expire = tombstone_expire(m.timestamp_us, tombstone_seconds);
                        for sk in sort_keys {
                            w.put(hash_key.as_ref(), sk.as_ref(), expire, tt, &[]);
                        }
                    } else {
                        for sk in sort_keys {
                            w.delete(hash_key.as_ref(), sk.as_ref());
                        }
                    }
                }
                Op::Empty => {}
                Op::RawPut { key, value } => w.raw(key.as_ref(), value.as_ref()),
                Op::SourceDecree(decree) => w.raw(SOURCE_DECREE_KEY, &decree.to_le_bytes()),
            }
        }
    }
    if let Some(last) = mutations.last() {
        w.raw(LAST_DECREE_KEY, &last.decree.to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutation_writes_t<B: AsRef<[u8]>>(m: &[Mutation<B>]) -> Result<Writes> {
        mutation_writes(m, 0)
    }

    #[allow(dead_code)]
    fn replay_writes_t<B: AsRef<[u8]>>(m: &[Mutation<B>]) -> Result<Writes> {
        replay_writes(m, 0)
    }

    #[test]
    fn deletes_write_tombstones_when_asked() {
        let ts = (PEGASUS_EPOCH_BEGIN + 100) * 1_000_000;
        let muts = vec![Mutation {
            decree: 1,
            timestamp_us: ts,
            cluster_id: 5,
            ops: vec![
                Op::Delete {
                    hash_key: b"h".to_vec(),
                    sort_key: b"a".to_vec(),
                },
                Op::MultiDelete {
                    hash_key: b"h".to_vec(),
                    sort_keys: vec![b"b".to_vec()],
                },
            ],
        }];
        let w = mutation_writes(&muts, 60).unwrap();
        let items: Vec<_> = w.iter().collect();
        let mut value = (160u32).to_be_bytes().to_vec();
        value.extend_from_slice(&((ts << 8) | (5 << 1) | 1).to_be_bytes());
        assert_eq!(items[0], (&b"\x00\x01ha"[..], Some(&value[..])));
        assert_eq!(items[1], (&b"\x00\x01hb"[..], Some(&value[..])));
        let plain = mutation_writes(&muts, 0).unwrap();
        assert_eq!(plain.iter().next().unwrap(), (&b"\x00\x01ha"[..], None));
    }

    fn v(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    pub(crate) fn sample() -> Vec<Mutation<Vec<u8>>> {
        vec![
            Mutation {
                decree: 7,
                timestamp_us: 1_700_000_000_000_000,
                cluster_id: 3,
                ops: vec![
                    Op::Put {
                        hash_key: v("hk"),
                        sort_key: v("sk"),
                        value: v("value"),
                        expire_ts: 99,
                    },
                    Op::Delete {
                        hash_key: v("hk"),
                        sort_key: v(""),
                    },
                ],
            },
            Mutation {
                decree: 8,
                timestamp_us: 5,
                cluster_id: 127,
                ops: vec![
                    Op::MultiPut {
                        hash_key: v("h2"),
                        pairs: vec![(v("a"), v("1")), (v("b"), v(""))],
                        expire_ts: 0,
                    },
                    Op::MultiDelete {
                        hash_key: v(""),
                        sort_keys: vec![v("x"), v("yy")],
                    },
                    Op::Empty,
                    Op::RawPut {
                        key: v("\x00\x01kk"),
                        value: v("raw"),
                    },
                    Op::SourceDecree(u64::MAX),
                ],
            },
            Mutation {
                decree: 9,
                timestamp_us: 0,
                cluster_id: 0,
                ops: vec![],
            },
        ]
    }

    fn owned(muts: Vec<Mutation<&[u8]>>) -> Vec<Mutation<Vec<u8>>> {
        let o = |b: &[u8]| b.to_vec();
        muts.into_iter()
            .map(|m| Mutation {
                decree: m.decree,
                timestamp_us: m.timestamp_us,
                cluster_id: m.cluster_id,
                ops: m
                    .ops
                    .into_iter()
                    .map(|op| match op {
                        Op::Put {
                            hash_key,
                            sort_key,
                            value,
                            expire_ts,
                        } => Op::Put {
                            hash_key: o(hash_key),
                            sort_key: o(sort_key),
                            value: o(value),
                            expire_ts,
                        },
                        Op::Delete { hash_key, sort_key } => Op::Delete {
                            hash_key: o(hash_key),
                            sort_key: o(sort_key),
                        },
                        Op::MultiPut {
                            hash_key,
                            pairs,
                            expire_ts,
                        } => Op::MultiPut {
                            hash_key: o(hash_key),
                            pairs: pairs.into_iter().map(|(a, b)| (o(a), o(b))).collect(),
                            expire_ts,
                        },
                        Op::MultiDelete {
                            hash_key,
                            sort_keys,
                        } => Op::MultiDelete {
                            hash_key: o(hash_key),
                            sort_keys: sort_keys.into_iter().map(o).collect(),
                        },
                        Op::Empty => Op::Empty,
                        Op::RawPut { key, value } => Op::RawPut {
                            key: o(key),
                            value: o(value),
                        },
                        Op::SourceDecree(d) => Op::SourceDecree(d),
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn round_trip_every_op() {
        let muts = sample();
        let block = encode_block(&muts).unwrap();
        assert_eq!(&block[0..4], b"PFW1");
        assert_eq!(
            le_u32(&block[4..8]) as usize,
            block.len() - BLOCK_HEADER_SIZE
        );
        assert_eq!(le_u64(&block[8..16]), 7);
        assert_eq!(le_u32(&block[16..20]), 3);
        assert_eq!(le_u32(&block[20..24]), crc32c(&block[28..], 0));
        assert_eq!(le_u32(&block[24..28]), crc32c(&block[..24], 0));
        assert_eq!(owned(decode_block(&block).unwrap()), muts);
    }

    #[test]
    fn exact_bytes_of_a_put() {
        let muts = vec![Mutation {
            decree: 1,
            timestamp_us: 2,
            cluster_id: 3,
            ops: vec![Op::Put {
                hash_key: &b"h"[..],
                sort_key: &b"s"[..],
                value: &b"v"[..],
                expire_ts: 4,
            }],
        }];
        let block = encode_block(&muts).unwrap();
        let mut payload = Vec::new();
        payload.extend_from_slice(&1u64.to_le_bytes());
        payload.extend_from_slice(&2u64.to_le_bytes());
        payload.push(3);
        payload.extend_from_slice(&1u32.to_le_bytes());
        payload
            .extend_from_slice(b"\x00\x01\x00h\x01\x00\x00\x00s\x01\x00\x00\x00v\x04\x00\x00\x00");
        assert_eq!(&block[28..], &payload[..]);
    }

    #[test]
    fn encode_rejects_bad_input() {
        let empty: Vec<Mutation<Vec<u8>>> = vec![];
        assert!(matches!(
            encode_block(&empty),
            Err(Error::InvalidArgument(_))
        ));
        let mut muts = sample();
        muts[0].cluster_id = 128;
        assert!(matches!(
            encode_block(&muts),
            Err(Error::InvalidArgument(_))
        ));
        let long = vec![Mutation {
            decree: 1,
            timestamp_us: 0,
            cluster_id: 0,
            ops: vec![Op::Delete {
                hash_key: vec![0u8; 65536],
                sort_key: vec![],
            }],
        }];
        assert!(matches!(
            encode_block(&long),
            Err(Error::InvalidArgument(_))
        ));
    }

    fn reseal(block: &mut [u8]) {
        let pcrc = crc32c(&block[28..], 0);
        block[20..24].copy_from_slice(&pcrc.to_le_bytes());
        let hcrc = crc32c(&block[..24], 0);
        block[24..28].copy_from_slice(&hcrc.to_le_bytes());
    }

    #[test]
    fn decode_block_errors() {
        let block = encode_block(&sample()).unwrap();
        let corrupt = |data: &[u8]| matches!(decode_block(data), Err(Error::Corruption { ref path, offset: 0, .. }) if path == BUFFER_PATH);
        assert!(corrupt(b""));
        assert!(corrupt(&block[..27]));
        assert!(corrupt(&block[..block.len() - 1]));
        let mut longer = block.clone();
        longer.push(0);
        assert!(corrupt(&longer));
        for i in 0..block.len() {
            let mut b = block.clone();
            b[i] ^= 0x10;
            assert!(corrupt(&b), "flip at {i}");
        }
        // Count differs from the parsed mutations.
        let mut b = block.clone();
        b[16] = 2;
        reseal(&mut b);
        assert!(corrupt(&b));
        // Unknown op type with good checksums.
        let one = encode_block(&[Mutation {
            decree: 1,
            timestamp_us: 0,
            cluster_id: 0,
            ops: vec![Op::<Vec<u8>>::Empty],
        }])
        .unwrap();
        let mut b = one.clone();
        *b.last_mut().unwrap() = 9;
        reseal(&mut b);
        assert!(corrupt(&b));
    }

    /// Found by fuzz/decode_block: blocks the encoder can never write, with
    /// good checksums, used to decode. Each is corruption now (rule 6).
    #[test]
    fn decode_takes_only_what_encode_writes() {
        let corrupt =
            |data: &[u8]| matches!(decode_block(data), Err(Error::Corruption { offset: 0, .. }));
        let block = encode_block(&sample()).unwrap();
        // Header first_decree differs from the first mutation's decree (the
        // pure twin's scan reported the header's, the Rust core the payload's).
        let mut b = block.clone();
        b[8..16].copy_from_slice(&8u64.to_le_bytes());
        reseal(&mut b);
        assert!(corrupt(&b));
        // cluster_id over 127: `cluster_id << 1` spilled into the timetag's
        // timestamp bits in mutation_writes.
        let mut b = block.clone();
        b[28 + 16] = 128;
        reseal(&mut b);
        assert!(corrupt(&b));
        // A block of no mutation.
        let mut b = block[..28].to_vec();
        b[4..8].copy_from_slice(&0u32.to_le_bytes());
        b[16..20].copy_from_slice(&0u32.to_le_bytes());
        reseal(&mut b);
        assert!(corrupt(&b));
        // What encode writes still decodes, at the cluster id limit too.
        let mut edge = sample();
        edge[0].cluster_id = MAX_CLUSTER_ID;
        let b = encode_block(&edge).unwrap();
        assert_eq!(decode_block(&b).unwrap().len(), 3);
    }

    #[test]
    fn hostile_lengths_do_not_panic_or_allocate() {
        // A payload claiming u32::MAX ops / pairs / bytes, with valid checksums.
        let mut payload = Vec::new();
        payload.extend_from_slice(&1u64.to_le_bytes());
        payload.extend_from_slice(&0u64.to_le_bytes());
        payload.push(0);
        payload.extend_from_slice(&u32::MAX.to_le_bytes());
        for tail in [
            &[OP_MULTI_PUT, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF][..],
            &[OP_MULTI_DELETE, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF][..],
            &[OP_RAW_PUT, 0xFF, 0xFF, 0xFF, 0xFF][..],
            &[OP_PUT, 0xFF, 0xFF][..],
        ] {
            let mut p = payload.clone();
            p[17..21].copy_from_slice(&1u32.to_le_bytes());
            p.extend_from_slice(tail);
            let mut out = Vec::new();
            assert!(parse_payload(&p, 1, 0, Some(&mut out)).is_err());
            assert!(parse_payload(&p, u32::MAX, 0, Some(&mut out)).is_err());
        }
        assert!(parse_payload(&payload, 1, 0, None).is_err());
        // Pseudo-random garbage, checksummed.
        let mut x: u64 = 0x1234_5678;
        for len in 0..400usize {
            let mut data = vec![0u8; len];
            for b in data.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let _ = parse_payload(&data, (x >> 40) as u32 % 4, 0, Some(&mut Vec::new()));
            let _ = decode_block(&data);
        }
    }

    #[test]
    fn filtered_parse_keeps_decrees_and_summary() {
        let block = encode_block(&sample()).unwrap();
        let mut out = Vec::new();
        let s = parse_payload(&block[28..], 3, 8, Some(&mut out)).unwrap();
        assert_eq!(out.iter().map(|m| m.decree).collect::<Vec<_>>(), vec![8, 9]);
        assert_eq!(s.decrees, Some((7, 9)));
        assert_eq!(s.max_decree, Some(9));
        assert_eq!(parse_payload(&block[28..], 3, 0, None).unwrap(), s);
    }

    #[test]
    fn writes_encoding() {
        let muts = sample();
        let w = mutation_writes_t(&muts).unwrap();
        let got: Vec<(Vec<u8>, Option<Vec<u8>>)> = w
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect();
        let tt0 = (1_700_000_000_000_000u64 << 8) | (3 << 1);
        let tt1 = (5u64 << 8) | (127 << 1);
        let val = |exp: u32, tt: u64, v: &[u8]| {
            let mut out = exp.to_be_bytes().to_vec();
            out.extend_from_slice(&tt.to_be_bytes());
            out.extend_from_slice(v);
            Some(out)
        };
        let expected = vec![
            (b"\x00\x02hksk".to_vec(), val(99, tt0, b"value")),
            (b"\x00\x02hk".to_vec(), None),
            (b"\x00\x02h2a".to_vec(), val(0, tt1, b"1")),
            (b"\x00\x02h2b".to_vec(), val(0, tt1, b"")),
            (b"\x00\x00x".to_vec(), None),
            (b"\x00\x00yy".to_vec(), None),
            (b"\x00\x01kk".to_vec(), Some(b"raw".to_vec())),
            (b"\x01".to_vec(), Some(u64::MAX.to_le_bytes().to_vec())),
            (b"\x00".to_vec(), Some(9u64.to_le_bytes().to_vec())),
        ];
        assert_eq!(got, expected);
        let none: Vec<Mutation<Vec<u8>>> = vec![];
        assert!(mutation_writes_t(&none).unwrap().is_empty());
        let mut big = sample();
        big[0].timestamp_us = 1 << 56;
        assert!(matches!(
            mutation_writes_t(&big),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn records_refuse_the_hash_keys_pegasus_refuses() {
        let one = |len: usize, put: bool| {
            let hash_key = vec![b'h'; len];
            let op = if put {
                Op::Put {
                    hash_key,
                    sort_key: v("s"),
                    value: v("v"),
                    expire_ts: 0,
                }
            } else {
                Op::MultiDelete {
                    hash_key,
                    sort_keys: vec![v("s")],
                }
            };
            vec![Mutation {
                decree: 1,
                timestamp_us: 1,
                cluster_id: 1,
                ops: vec![op],
            }]
        };
        for put in [true, false] {
            let longest = mutation_writes_t(&one(MAX_HASH_KEY, put)).unwrap();
            let (key, _) = longest.iter().next().unwrap();
            assert_eq!(&key[..2], &[0xFF, 0xFE]);
            assert!(matches!(
                mutation_writes_t(&one(MAX_HASH_KEY + 1, put)),
                Err(Error::InvalidArgument(_))
            ));
            // a WAL may hold what the format allows: replay and the codec take it
            let legacy = one(MAX_HASH_KEY + 1, put);
            assert_eq!(replay_writes_t(&legacy).unwrap().len(), 2);
            let block = encode_block(&legacy).unwrap();
            assert_eq!(owned(decode_block(&block).unwrap()), legacy);
            assert!(matches!(
                replay_writes_t(&one(MAX_HASH_KEY + 2, put)),
                Err(Error::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn classify_rules() {
        let a = encode_block(&sample()[..1]).unwrap();
        let b = encode_block(&sample()[1..]).unwrap();
        let mut file = a.clone();
        file.extend_from_slice(&b);
        let size = file.len() as u64;
        let alen = a.len() as u64;
        assert!(matches!(classify(&file, 0, 0, size), Step::Block { end, .. } if end == alen));
        assert!(matches!(classify(&file, 0, alen, size), Step::Block { end, .. } if end == size));
        assert_eq!(classify(&file, 0, size, size), Step::End);
        // Window too short: ask for more.
        assert_eq!(classify(&file[..10], 0, 0, size), Step::Need(28));
        assert_eq!(classify(&file[..30], 0, 0, size), Step::Need(alen));
        // Torn header.
        assert!(matches!(classify(&file[..20], 0, 0, 20), Step::Torn(_)));
        // Zero tail.
        let zeros = vec![0u8; 100];
        assert!(matches!(classify(&zeros, 0, 0, 100), Step::Torn(_)));
        // Payload over 1 GiB.
        let mut big = a.clone();
        big[4..8].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        let h = crc32c(&big[..24], 0);
        big[24..28].copy_from_slice(&h.to_le_bytes());
        assert!(matches!(
            classify(&big, 0, 0, big.len() as u64),
            Step::Corrupt(_)
        ));
    }
}
