//! Record digests for verifying a duplication (docs/verify.md): the live records of a
//! partition, in key order, hashed into chunks whose boundaries depend on the keys alone,
//! so two sides holding the same records cut them the same way and a difference is found
//! in one chunk, not by scanning again.
//!
//! A record counts as `u32 LE len(key) | key | u32 BE expire_ts | u32 LE len(value) | value`
//! (key: the RocksDB key; value: the user value without its header; the timetag is left out).
//! A chunk ends after a record whose key's CRC32C has its low `chunk_bits` bits all zero, and
//! at the end. Each chunk is `(last key, record count, BLAKE3 of its records)`.

use crate::crc::crc32c;
use crate::records::{scan_record, Scanned, ShortValue};

/// One closed chunk: the last key in it, how many records, and their BLAKE3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub last_key: Vec<u8>,
    pub count: u64,
    pub digest: [u8; 32],
}

/// Where one encoded record lies in a buffer: (key start, key end, record end).
pub type Span = (usize, usize, usize);

/// Append the record's digest bytes to `buf` (and its span to `spans`) when it is a live record
/// at Pegasus time `now`; meta keys, tombstones and expired records add nothing.
pub fn encode_record(
    buf: &mut Vec<u8>,
    spans: &mut Vec<Span>,
    key: &[u8],
    raw: &[u8],
    now: i64,
) -> Result<(), ShortValue> {
    let value = match scan_record(key, raw, now) {
        Scanned::Skip => return Ok(()),
        Scanned::Short => return Err(ShortValue),
        Scanned::Live(_, _, value) => value,
    };
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    let ks = buf.len();
    buf.extend_from_slice(key);
    let ke = buf.len();
    buf.extend_from_slice(&raw[..4]);
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    buf.extend_from_slice(value);
    spans.push((ks, ke, buf.len()));
    Ok(())
}

/// The digest of the live records fed to it, in the order fed (key order).
pub struct RecordDigest {
    mask: u32,
    hasher: blake3::Hasher,
    count: u64,
    last_key: Vec<u8>,
    chunks: Vec<Chunk>,
}

impl RecordDigest {
    /// `chunk_bits` is at most 31 (a chunk of about 2^chunk_bits records).
    pub fn new(chunk_bits: u32) -> Self {
        RecordDigest {
            mask: (1u32 << chunk_bits.min(31)) - 1,
            hasher: blake3::Hasher::new(),
            count: 0,
            last_key: Vec::new(),
            chunks: Vec::new(),
        }
    }

    /// Count one stored record as a scan at Pegasus time `now` sees it: meta keys,
    /// tombstones and records expired at `now` are not records.
    pub fn add(&mut self, key: &[u8], raw: &[u8], now: i64) -> Result<(), ShortValue> {
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        encode_record(&mut buf, &mut spans, key, raw, now)?;
        self.add_encoded(&buf, &spans);
        Ok(())
    }

    /// Count records already encoded by [`encode_record`] into `buf` (`spans` as it left them).
    /// The bytes between two cuts go to BLAKE3 in one update, which hashes a long input on
    /// several SIMD lanes at once.
    pub fn add_encoded(&mut self, buf: &[u8], spans: &[Span]) {
        let mut from = 0;
        for &(ks, ke, end) in spans {
            self.count += 1;
            let key = &buf[ks..ke];
            if crc32c(key, 0) & self.mask == 0 {
                self.hasher.update(&buf[from..end]);
                from = end;
                self.close(key);
            }
        }
        if from < buf.len() {
            self.hasher.update(&buf[from..]);
        }
        if let Some(&(ks, ke, end)) = spans.last() {
            if end > from {
                self.last_key.clear();
                self.last_key.extend_from_slice(&buf[ks..ke]);
            }
        }
    }

    fn close(&mut self, key: &[u8]) {
        let hasher = std::mem::take(&mut self.hasher);
        self.chunks.push(Chunk {
            last_key: key.to_vec(),
            count: self.count,
            digest: *hasher.finalize().as_bytes(),
        });
        self.count = 0;
        self.last_key.clear();
    }

    /// Every chunk, the last one closed at the last record.
    pub fn finish(&mut self) -> Vec<Chunk> {
        if self.count > 0 {
            let key = std::mem::take(&mut self.last_key);
            self.close(&key);
        }
        std::mem::take(&mut self.chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u32) -> (Vec<u8>, Vec<u8>) {
        let key = [&[0u8, 2][..], b"hk", format!("{i:08}").as_bytes()].concat();
        let mut raw = 0u32.to_be_bytes().to_vec();
        raw.extend_from_slice(&8u64.to_be_bytes());
        raw.extend_from_slice(b"value");
        (key, raw)
    }

    fn digest(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<Chunk> {
        let mut d = RecordDigest::new(4);
        for (k, v) in records {
            d.add(k, v, 100).unwrap();
        }
        d.finish()
    }

    #[test]
    fn same_records_same_chunks_and_one_change_one_chunk() {
        let records: Vec<_> = (0..500).map(record).collect();
        let a = digest(&records);
        assert!(a.len() > 5);
        assert_eq!(a.iter().map(|c| c.count).sum::<u64>(), 500);
        assert_eq!(a, digest(&records));
        let mut changed = records.clone();
        changed[250].1.push(b'!');
        let b = digest(&changed);
        assert_eq!(a.len(), b.len());
        assert_eq!(a.iter().zip(&b).filter(|(x, y)| x != y).count(), 1);
    }

    #[test]
    fn one_run_or_record_by_record_the_same_chunks() {
        let records: Vec<_> = (0..700).map(record).collect();
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        for (k, v) in &records[..300] {
            encode_record(&mut buf, &mut spans, k, v, 100).unwrap();
        }
        let mut d = RecordDigest::new(4);
        d.add_encoded(&buf, &spans);
        let (mut buf, mut spans) = (Vec::new(), Vec::new());
        for (k, v) in &records[300..] {
            encode_record(&mut buf, &mut spans, k, v, 100).unwrap();
        }
        d.add_encoded(&buf, &spans);
        assert_eq!(d.finish(), digest(&records));
    }

    #[test]
    fn skips_tombstones_meta_and_expired_and_counts_expiry() {
        let (key, raw) = record(1);
        let mut tomb = raw.clone();
        tomb[11] |= 1;
        let mut expired = raw.clone();
        expired[..4].copy_from_slice(&50u32.to_be_bytes());
        let mut later = raw.clone();
        later[..4].copy_from_slice(&500u32.to_be_bytes());
        let mut d = RecordDigest::new(4);
        d.add(b"\x00", &raw, 100).unwrap();
        d.add(&key, &tomb, 100).unwrap();
        d.add(&key, &expired, 100).unwrap();
        assert!(d.finish().is_empty());
        assert_ne!(digest(&[(key.clone(), raw)]), digest(&[(key, later)]));
        assert_eq!(
            RecordDigest::new(4).add(b"ab", b"short", 0),
            Err(ShortValue)
        );
    }
}
