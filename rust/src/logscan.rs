//! Scanning WAL files and directories, and replay batches.
//!
//! A scan has two phases: [`read_log_file`] reads the bytes and verifies every
//! block (checksums and the payload parse, rules 1-6 of the spec) without
//! building anything; [`ScannedFile::mutations`] then decodes the kept
//! mutations as slices of the file buffer.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::codec::{
    check_first_decree, classify, parse_payload, replay_writes, Mutation, Step, Writes,
};
use crate::error::{Error, Result};

/// A verified block of a scanned file.
#[derive(Debug, Clone)]
pub struct BlockRef {
    /// Payload bytes, as indexes into [`ScannedFile::buf`].
    pub payload: Range<usize>,
    pub count: u32,
    /// Largest decree in the block (`None` when it holds no mutation).
    pub max_decree: Option<u64>,
}

/// One file read from `base` to where its valid blocks end (or further).
#[derive(Debug)]
pub struct ScannedFile {
    pub path: PathBuf,
    /// File bytes from offset `base` on.
    pub buf: Vec<u8>,
    pub base: u64,
    pub blocks: Vec<BlockRef>,
    /// Offset after the last block read (where a torn tail starts, if torn).
    pub end: u64,
    pub torn: bool,
    /// File size when the scan began.
    pub size: u64,
    /// Decrees of the first and last mutation read, if any.
    pub decrees: Option<(u64, u64)>,
}

/// (file name, first decree, last decree, end of valid data, file size)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileInfo {
    pub name: String,
    pub first_decree: u64,
    pub last_decree: u64,
    pub valid_end: u64,
    pub size: u64,
}

/// How much more than asked a scan with `max_bytes` reads ahead.
const READ_AHEAD: u64 = 1 << 20;

struct Window<'a> {
    file: &'a mut File,
    path: &'a Path,
    buf: Vec<u8>,
    base: u64,
    size: u64,
}

impl Window<'_> {
    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Read on until the window holds at least `to` (never past the size).
    fn fill(&mut self, to: u64) -> Result<()> {
        let to = to.min(self.size);
        let start = self.end();
        if to <= start {
            return Ok(());
        }
        let n = to - start;
        let want =
            usize::try_from(n).map_err(|_| Error::InvalidArgument("file too large".into()))?;
        self.buf
            .try_reserve_exact(want)
            .map_err(|_| Error::io_at(self.path, io::Error::from(io::ErrorKind::OutOfMemory)))?;
        let got = (&mut *self.file)
            .take(n)
            .read_to_end(&mut self.buf)
            .map_err(|e| Error::io_at(self.path, e))?;
        if got != want {
            return Err(Error::io_at(
                self.path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "log file shrank while being read",
                ),
            ));
        }
        Ok(())
    }
}

/// Read and verify the blocks of `path` from `offset`. With `max_bytes > 0`
/// the scan stops at the first block boundary at or past `offset + max_bytes`
/// (always reading at least one block if there is one).
pub fn read_log_file(path: &Path, offset: u64, max_bytes: u64) -> Result<ScannedFile> {
    let mut file = File::open(path).map_err(|e| Error::io_at(path, e))?;
    let size = file.metadata().map_err(|e| Error::io_at(path, e))?.len();
    if offset > size {
        return Err(Error::InvalidArgument(format!(
            "offset {offset} is past the end of {} ({size} bytes)",
            path.display()
        )));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io_at(path, e))?;
    let mut w = Window {
        file: &mut file,
        path,
        buf: Vec::new(),
        base: offset,
        size,
    };
    if max_bytes == 0 {
        w.fill(size)?;
    } else {
        w.fill(offset.saturating_add(max_bytes).saturating_add(READ_AHEAD))?;
    }

    let mut pos = offset;
    let mut torn = false;
    let mut blocks = Vec::new();
    let mut decrees: Option<(u64, u64)> = None;
    loop {
        if max_bytes > 0 && pos - offset >= max_bytes {
            break;
        }
        match classify(&w.buf, w.base, pos, size) {
            Step::End => break,
            Step::Torn(_) => {
                torn = true;
                break;
            }
            Step::Corrupt(reason) => return Err(Error::corruption(path, pos, reason)),
            Step::Need(to) => {
                // Grow geometrically so that many small reads stay cheap.
                let grown = w.end().saturating_add((w.buf.len() as u64).max(READ_AHEAD));
                w.fill(to.max(grown))?;
            }
            Step::Block {
                header,
                payload,
                end,
            } => {
                let summary =
                    parse_payload(&w.buf[payload.clone()], header.mutation_count, 0, None)
                        .and_then(|summary| check_first_decree(&header, &summary).map(|()| summary))
                        .map_err(|reason| Error::corruption(path, pos, reason))?;
                if let Some((first, last)) = summary.decrees {
                    decrees = Some(match decrees {
                        None => (first, last),
                        Some((f, _)) => (f, last),
                    });
                }
                blocks.push(BlockRef {
                    payload,
                    count: header.mutation_count,
                    max_decree: summary.max_decree,
                });
                pos = end;
            }
        }
    }
    let base = w.base;
    let buf = w.buf;
    Ok(ScannedFile {
        path: path.to_path_buf(),
        buf,
        base,
        blocks,
        end: pos,
        torn,
        size,
        decrees,
    })
}

impl ScannedFile {
    /// Append the mutations with `decree >= start_decree` to `out`.
    pub fn mutations<'a>(
        &'a self,
        start_decree: u64,
        out: &mut Vec<Mutation<&'a [u8]>>,
    ) -> Result<()> {
        for block in &self.blocks {
            if block.max_decree.is_none_or(|max| max < start_decree) {
                continue;
            }
            parse_payload(
                &self.buf[block.payload.clone()],
                block.count,
                start_decree,
                Some(out),
            )
            .map_err(|reason| {
                let offset =
                    self.base + block.payload.start as u64 - crate::codec::BLOCK_HEADER_SIZE as u64;
                Error::corruption(&self.path, offset, reason)
            })?;
        }
        Ok(())
    }

    pub fn info(&self) -> LogFileInfo {
        let (first_decree, last_decree) = self.decrees.unwrap_or((0, 0));
        LogFileInfo {
            name: self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            first_decree,
            last_decree,
            valid_end: self.end,
            size: self.size,
        }
    }
}

/// Whole verified blocks of one log file, as stored, for shipping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRun {
    /// The blocks' bytes, back to back (empty when none is due).
    pub data: Vec<u8>,
    /// First decree of the first block and last decree of the last (0 when empty).
    pub first_decree: u64,
    pub last_decree: u64,
    /// Timestamp of the first mutation shipped (0 when empty).
    pub first_timestamp_us: u64,
    /// Where the next read starts: after the last block taken or skipped.
    pub end: u64,
    /// A torn tail follows `end`, and nothing after it was left for later.
    pub torn: bool,
    /// Last decree of the blocks skipped before the run because every mutation in
    /// them came from `skip_cluster_id` (0 when none was).
    pub skipped_through: u64,
}

/// Whether every mutation of `block` was first written by cluster `cluster_id`.
fn all_from(file: &ScannedFile, block: &BlockRef, cluster_id: u8) -> Result<bool> {
    let mut muts = Vec::new();
    parse_payload(
        &file.buf[block.payload.clone()],
        block.count,
        0,
        Some(&mut muts),
    )
    .map_err(|reason| {
        let offset =
            file.base + block.payload.start as u64 - crate::codec::BLOCK_HEADER_SIZE as u64;
        Error::corruption(&file.path, offset, reason)
    })?;
    Ok(!muts.is_empty() && muts.iter().all(|m| m.cluster_id == cluster_id))
}

/// The verified blocks of `path` from `offset` whose decrees reach
/// `start_decree`, up to about `max_bytes` (0: no limit), stopping before the
/// first block holding a decree past `max_decree`. Blocks entirely below
/// `start_decree` are skipped (`end` moves past them); a block that straddles
/// it is taken whole (the follower skips what it has).
pub fn read_log_blocks(
    path: &Path,
    offset: u64,
    start_decree: u64,
    max_bytes: u64,
    max_decree: u64,
    skip_cluster_id: u8,
) -> Result<BlockRun> {
    let file = read_log_file(path, offset, max_bytes)?;
    let header = crate::codec::BLOCK_HEADER_SIZE;
    let mut run = BlockRun {
        data: Vec::new(),
        first_decree: 0,
        last_decree: 0,
        first_timestamp_us: 0,
        end: offset,
        torn: file.torn,
        skipped_through: 0,
    };
    let mut taken: Option<Range<usize>> = None;
    for block in &file.blocks {
        let start = block.payload.start - header;
        let Some(last) = block.max_decree else {
            // a block without mutations (never written, but harmless): step over it
            if taken.is_none() {
                run.end = file.base + block.payload.end as u64;
            }
            continue;
        };
        if last > max_decree {
            run.torn = false;
            break;
        }
        if last < start_decree && taken.is_none() {
            run.end = file.base + block.payload.end as u64;
            continue;
        }
        if skip_cluster_id != 0 && all_from(&file, block, skip_cluster_id)? {
            if taken.is_some() {
                // the run ends before it; the next read starts by skipping it
                run.torn = false;
                break;
            }
            run.skipped_through = last;
            run.end = file.base + block.payload.end as u64;
            continue;
        }
        if taken.is_none() {
            let h = &file.buf[start..block.payload.start];
            run.first_decree = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
            let p = &file.buf[block.payload.clone()];
            // a mutation starts with its decree, then its timestamp (parse_payload checked both)
            run.first_timestamp_us = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
            taken = Some(start..block.payload.end);
        } else if let Some(r) = taken.as_mut() {
            r.end = block.payload.end;
        }
        run.last_decree = last;
        run.end = file.base + block.payload.end as u64;
    }
    if let Some(r) = taken {
        run.data = file.buf[r].to_vec();
    }
    Ok(run)
}

/// `log.<index>.<start_offset>` with decimal numbers: (index, start_offset).
pub fn parse_log_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("log.")?;
    let (index, start) = rest.split_once('.')?;
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    Some((num(index)?, num(start)?))
}

/// The log files of a directory in index order.
pub fn list_log_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io_at(dir, e))? {
        let entry = entry.map_err(|e| Error::io_at(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((index, start)) = parse_log_name(name) {
            found.push((index, start, name.to_string()));
        }
    }
    found.sort();
    Ok(found
        .into_iter()
        .map(|(_, _, name)| dir.join(name))
        .collect())
}

/// Read and verify every log file of `dir`. A torn tail is allowed only in the
/// newest file; anywhere else it is corruption at the torn offset.
pub fn read_log_dir(dir: &Path) -> Result<Vec<ScannedFile>> {
    let paths = list_log_files(dir)?;
    let n = paths.len();
    let mut files = Vec::with_capacity(n);
    for (i, path) in paths.iter().enumerate() {
        let file = read_log_file(path, 0, 0)?;
        if file.torn && i + 1 != n {
            return Err(Error::corruption(
                path,
                file.end,
                "torn block in a log file that is not the newest",
            ));
        }
        files.push(file);
    }
    Ok(files)
}

/// The mutations with `decree >= start_decree` of scanned files, in order.
pub fn dir_mutations(files: &[ScannedFile], start_decree: u64) -> Result<Vec<Mutation<&[u8]>>> {
    let mut out = Vec::new();
    for file in files {
        file.mutations(start_decree, &mut out)?;
    }
    Ok(out)
}

/// A replay batch: the decree of its last mutation and its RocksDB writes.
pub type Batch = (u64, Writes);

fn check_batch_size(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument("batch_size must be positive".into()));
    }
    Ok(())
}

/// Replay batches of at most `batch_size` mutations: each the net effect of
/// its mutations' writes (one write per key, the last), in key order.
fn batches_of(
    mutations: &[Mutation<&[u8]>],
    batch_size: usize,
    tombstone_seconds: u32,
) -> Result<Vec<Batch>> {
    let mut batches = Vec::with_capacity(mutations.len().div_ceil(batch_size));
    for chunk in mutations.chunks(batch_size) {
        let last = chunk[chunk.len() - 1].decree;
        let mut writes = replay_writes(chunk, tombstone_seconds)?;
        writes.net_sorted();
        batches.push((last, writes));
    }
    Ok(batches)
}

/// Replay `dir` from `start_decree` as batches of at most `batch_size`
/// mutations each, plus the file infos.
pub fn replay_log_dir(
    dir: &Path,
    start_decree: u64,
    batch_size: usize,
    tombstone_seconds: u32,
) -> Result<(Vec<Batch>, Vec<LogFileInfo>)> {
    check_batch_size(batch_size)?;
    let files = read_log_dir(dir)?;
    let mutations = dir_mutations(&files, start_decree)?;
    let batches = batches_of(&mutations, batch_size, tombstone_seconds)?;
    let infos = files.iter().map(ScannedFile::info).collect();
    Ok((batches, infos))
}

/// One file of [`replay_log_dir`]: its batches, its info, and whether it
/// ends in a torn tail (the caller decides whether that is allowed).
pub fn replay_log_file(
    path: &Path,
    start_decree: u64,
    batch_size: usize,
    tombstone_seconds: u32,
) -> Result<(Vec<Batch>, LogFileInfo, bool)> {
    check_batch_size(batch_size)?;
    let file = read_log_file(path, 0, 0)?;
    let mut mutations = Vec::new();
    file.mutations(start_decree, &mut mutations)?;
    let batches = batches_of(&mutations, batch_size, tombstone_seconds)?;
    Ok((batches, file.info(), file.torn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode_block, Op};
    use std::fs;

    fn block(decrees: std::ops::Range<u64>) -> Vec<u8> {
        let muts: Vec<Mutation<Vec<u8>>> = decrees
            .map(|d| Mutation {
                decree: d,
                timestamp_us: d * 1000,
                cluster_id: 1,
                ops: vec![Op::Put {
                    hash_key: format!("h{d}").into_bytes(),
                    sort_key: b"s".to_vec(),
                    value: vec![d as u8; 10],
                    expire_ts: 0,
                }],
            })
            .collect();
        encode_block(&muts).unwrap()
    }

    /// Three blocks: decrees 1..3, 3..6, 6..8. Returns (bytes, block starts).
    fn three_blocks() -> (Vec<u8>, Vec<u64>) {
        let mut data = Vec::new();
        let mut starts = Vec::new();
        for r in [1..3, 3..6, 6..8] {
            starts.push(data.len() as u64);
            data.extend_from_slice(&block(r));
        }
        (data, starts)
    }

    fn decrees(file: &ScannedFile, start: u64) -> Vec<u64> {
        let mut out = Vec::new();
        file.mutations(start, &mut out).unwrap();
        out.iter().map(|m| m.decree).collect()
    }

    fn replay_log_dir_t(d: &Path, s: u64, b: usize) -> Result<(Vec<Batch>, Vec<LogFileInfo>)> {
        replay_log_dir(d, s, b, 0)
    }

    #[allow(dead_code)]
    fn replay_log_file_t(p: &Path, s: u64, b: usize) -> Result<(Vec<Batch>, LogFileInfo, bool)> {
        replay_log_file(p, s, b, 0)
    }

    fn read_log_blocks_t(
        p: &Path,
        offset: u64,
        start: u64,
        max_bytes: u64,
        max_decree: u64,
    ) -> Result<BlockRun> {
        read_log_blocks(p, offset, start, max_bytes, max_decree, 0)
    }

    #[test]
    fn block_runs_skip_a_clusters_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.1.0");
        // cluster 1 wrote decrees 1..3 (block(..) uses cluster id 1); then a block from cluster 9
        let mut data = block(1..3);
        let mine = data.len() as u64;
        let foreign: Vec<Mutation<Vec<u8>>> = (3..5)
            .map(|d| Mutation {
                decree: d,
                timestamp_us: d,
                cluster_id: 9,
                ops: vec![Op::Empty],
            })
            .collect();
        data.extend_from_slice(&crate::codec::encode_block(&foreign).unwrap());
        let theirs = data.len() as u64;
        data.extend_from_slice(&block(5..6));
        fs::write(&p, &data).unwrap();
        // skipping cluster 1: its block at the start is stepped over, and the run starts after it
        let r = read_log_blocks(&p, 0, 1, 0, u64::MAX, 1).unwrap();
        assert_eq!(
            (r.skipped_through, r.first_decree, r.last_decree, r.end),
            (2, 3, 4, theirs)
        );
        // ...and the next read skips the last block too
        let r = read_log_blocks(&p, theirs, 5, 0, u64::MAX, 1).unwrap();
        assert_eq!(
            (r.skipped_through, r.data.len(), r.end),
            (5, 0, data.len() as u64)
        );
        // skipping cluster 9: the run stops before its block
        let r = read_log_blocks(&p, 0, 1, 0, u64::MAX, 9).unwrap();
        assert_eq!((r.skipped_through, r.last_decree, r.end), (0, 2, mine));
    }

    #[test]
    fn block_runs_for_shipping() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.1.0");
        let (data, starts) = three_blocks();
        let size = data.len() as u64;
        fs::write(&p, &data).unwrap();
        let all = read_log_blocks_t(&p, 0, 1, 0, u64::MAX).unwrap();
        assert_eq!(all.data, data);
        assert_eq!(
            (all.first_decree, all.last_decree, all.end, all.torn),
            (1, 7, size, false)
        );
        assert_eq!(all.first_timestamp_us, 1000);
        // blocks wholly below start_decree are skipped; a straddling one is taken whole
        let r = read_log_blocks_t(&p, 0, 4, 0, u64::MAX).unwrap();
        assert_eq!(r.data, data[starts[1] as usize..].to_vec());
        assert_eq!(
            (r.first_decree, r.last_decree, r.first_timestamp_us),
            (3, 7, 3000)
        );
        // nothing past max_decree: stop before the block that holds it
        let r = read_log_blocks_t(&p, 0, 1, 0, 4).unwrap();
        assert_eq!(r.data, data[..starts[1] as usize].to_vec());
        assert_eq!((r.last_decree, r.end), (2, starts[1]));
        let r = read_log_blocks_t(&p, starts[1], 3, 0, 2).unwrap();
        assert_eq!((r.data.len(), r.end, r.first_decree), (0, starts[1], 0));
        // everything below start_decree: nothing to ship, and the cursor moves past it
        let r = read_log_blocks_t(&p, 0, 100, 0, u64::MAX).unwrap();
        assert_eq!((r.data.len(), r.end), (0, size));
        // max_bytes: at least one block
        let r = read_log_blocks_t(&p, 0, 1, 1, u64::MAX).unwrap();
        assert_eq!((r.last_decree, r.end), (2, starts[1]));
        // a torn tail is reported, and shipping stops before it
        fs::write(&p, &data[..data.len() - 3]).unwrap();
        let r = read_log_blocks_t(&p, 0, 1, 0, u64::MAX).unwrap();
        assert_eq!((r.last_decree, r.end, r.torn), (5, starts[2], true));
        // a shipped run decodes back to its mutations
        let muts = crate::codec::decode_blocks(&all.data).unwrap();
        assert_eq!(
            muts.iter().map(|m| m.decree).collect::<Vec<_>>(),
            (1..8).collect::<Vec<_>>()
        );
        assert!(crate::codec::decode_blocks(&data[..data.len() - 1]).is_err());
        assert!(crate::codec::decode_blocks(&[]).unwrap().is_empty());
    }

    #[test]
    fn clean_scan_offsets_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.1.0");
        let (data, starts) = three_blocks();
        fs::write(&p, &data).unwrap();
        let f = read_log_file(&p, 0, 0).unwrap();
        assert_eq!((f.end, f.torn), (data.len() as u64, false));
        assert_eq!(decrees(&f, 0), (1..8).collect::<Vec<_>>());
        assert_eq!(decrees(&f, 4), vec![4, 5, 6, 7]);
        assert_eq!(f.info().first_decree, 1);
        assert_eq!(f.info().last_decree, 7);
        let f = read_log_file(&p, starts[1], 0).unwrap();
        assert_eq!(decrees(&f, 0), vec![3, 4, 5, 6, 7]);
        // max_bytes: stop at the first boundary at or past it, at least one block.
        let f = read_log_file(&p, 0, 1).unwrap();
        assert_eq!((f.end, decrees(&f, 0)), (starts[1], vec![1, 2]));
        let f = read_log_file(&p, 0, starts[1] + 1).unwrap();
        assert_eq!(f.end, starts[2]);
        let f = read_log_file(&p, 0, starts[1]).unwrap();
        assert_eq!(f.end, starts[1]);
        let f = read_log_file(&p, data.len() as u64, 5).unwrap();
        assert_eq!(
            (f.end, f.torn, f.blocks.len()),
            (data.len() as u64, false, 0)
        );
        assert!(matches!(
            read_log_file(&p, data.len() as u64 + 1, 0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            read_log_file(&dir.path().join("nope"), 0, 0),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
    }

    #[test]
    fn torn_tail_at_every_cut_of_the_last_block() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.1.0");
        let (data, starts) = three_blocks();
        let last = starts[2];
        for cut in last..data.len() as u64 {
            fs::write(&p, &data[..cut as usize]).unwrap();
            for max_bytes in [0, 1] {
                let offset = if max_bytes == 0 { 0 } else { last };
                let f = read_log_file(&p, offset, max_bytes).unwrap();
                assert_eq!(f.end, last, "cut {cut}");
                assert_eq!(f.torn, cut != last, "cut {cut}");
            }
            let f = read_log_file(&p, 0, 0).unwrap();
            assert_eq!(decrees(&f, 0), (1..6).collect::<Vec<_>>());
        }
        // A bit flip in the last block's payload is a torn tail too (rule 5).
        let mut d = data.clone();
        *d.last_mut().unwrap() ^= 1;
        fs::write(&p, &d).unwrap();
        let f = read_log_file(&p, 0, 0).unwrap();
        assert_eq!((f.end, f.torn), (last, true));
    }

    #[test]
    fn corruption_in_an_earlier_block() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.1.0");
        let (data, starts) = three_blocks();
        // Payload bit flip in block 1.
        let mut d = data.clone();
        d[starts[1] as usize + 40] ^= 0x04;
        fs::write(&p, &d).unwrap();
        match read_log_file(&p, 0, 0) {
            Err(Error::Corruption { offset, .. }) => assert_eq!(offset, starts[1]),
            other => panic!("{other:?}"),
        }
        // Bit flip in the payload_len of block 0: header checksum.
        let mut d = data.clone();
        d[5] ^= 0x01;
        fs::write(&p, &d).unwrap();
        match read_log_file(&p, 0, 0) {
            Err(Error::Corruption { offset, reason, .. }) => {
                assert_eq!(offset, 0);
                assert!(reason.contains("header"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Garbage (not zeros) after the last block.
        let mut d = data.clone();
        d.extend_from_slice(&[
            0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0,
        ]);
        fs::write(&p, &d).unwrap();
        assert!(
            matches!(read_log_file(&p, 0, 0), Err(Error::Corruption { offset, .. }) if offset == data.len() as u64)
        );
    }

    /// The scan applies the decoder's rule 6 checks: a block whose header
    /// names another first decree is corruption at its offset.
    #[test]
    fn first_decree_mismatch_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.1.0");
        let (mut data, starts) = three_blocks();
        let at = starts[1] as usize;
        data[at + 8..at + 16].copy_from_slice(&4u64.to_le_bytes());
        let hcrc = crate::crc::crc32c(&data[at..at + 24], 0);
        data[at + 24..at + 28].copy_from_slice(&hcrc.to_le_bytes());
        fs::write(&p, &data).unwrap();
        assert!(matches!(
            read_log_file(&p, 0, 0),
            Err(Error::Corruption { offset, .. }) if offset == starts[1]
        ));
    }

    #[test]
    #[cfg_attr(miri, ignore = "3 MiB scans: too slow under miri")]
    fn trailing_zeros_are_torn() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.1.0");
        let (data, _) = three_blocks();
        for zeros in [1usize, 27, 28, 4096, 3 << 20] {
            let mut d = data.clone();
            d.resize(data.len() + zeros, 0);
            fs::write(&p, &d).unwrap();
            for max_bytes in [0, 1, 100] {
                let mut f = read_log_file(&p, 0, max_bytes).unwrap();
                while !f.torn && max_bytes > 0 {
                    f = read_log_file(&p, f.end, max_bytes).unwrap();
                }
                assert_eq!((f.end, f.torn), (data.len() as u64, true));
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "3 MiB blocks: too slow under miri")]
    fn big_blocks_with_small_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.1.0");
        let big: Vec<Mutation<Vec<u8>>> = vec![Mutation {
            decree: 1,
            timestamp_us: 0,
            cluster_id: 0,
            ops: vec![Op::RawPut {
                key: b"k".to_vec(),
                value: vec![7u8; 3 << 20],
            }],
        }];
        let mut data = encode_block(&big).unwrap();
        let first = data.len() as u64;
        data.extend_from_slice(&block(2..4));
        fs::write(&p, &data).unwrap();
        let f = read_log_file(&p, 0, 10).unwrap();
        assert_eq!((f.end, decrees(&f, 0)), (first, vec![1]));
        let f = read_log_file(&p, first, 10).unwrap();
        assert_eq!((f.end, decrees(&f, 0)), (data.len() as u64, vec![2, 3]));
    }

    #[test]
    fn directory_scan_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let b1 = block(1..3);
        let b2 = block(3..6);
        let b3 = block(6..8);
        fs::write(d.join("log.2.0"), &b2).unwrap();
        fs::write(d.join("log.10.0"), &b3).unwrap();
        fs::write(d.join("log.1.0"), &b1).unwrap();
        for junk in [
            "log.x.0",
            "log.3",
            "log.3.0.tmp",
            "log..0",
            "other",
            "log.-1.0",
        ] {
            fs::write(d.join(junk), b"junk").unwrap();
        }
        let files = read_log_dir(d).unwrap();
        let names: Vec<String> = files.iter().map(|f| f.info().name).collect();
        assert_eq!(names, ["log.1.0", "log.2.0", "log.10.0"]);
        let muts = dir_mutations(&files, 4).unwrap();
        assert_eq!(
            muts.iter().map(|m| m.decree).collect::<Vec<_>>(),
            vec![4, 5, 6, 7]
        );
        assert_eq!(
            files[1].info(),
            LogFileInfo {
                name: "log.2.0".into(),
                first_decree: 3,
                last_decree: 5,
                valid_end: b2.len() as u64,
                size: b2.len() as u64
            }
        );

        let (batches, infos) = replay_log_dir_t(d, 2, 2).unwrap();
        assert_eq!(infos.len(), 3);
        assert_eq!(
            batches.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![3, 5, 7]
        );
        let (b0, w0) = &batches[0];
        let items: Vec<_> = w0.iter().collect();
        // The decree key then the two puts: the net writes, sorted by key.
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], (&b"\x00"[..], Some(&b0.to_le_bytes()[..])));
        assert_eq!(items[1].0, b"\x00\x02h2s");
        assert!(matches!(
            replay_log_dir_t(d, 0, 0),
            Err(Error::InvalidArgument(_))
        ));
        let (batches, _) = replay_log_dir_t(d, 100, 2).unwrap();
        assert!(batches.is_empty());
        let (batches, _) = replay_log_dir_t(d, 100, 2).unwrap();
        assert!(batches.is_empty());

        // A torn tail in the newest file is fine; in an older one it is corruption.
        let mut torn = b3.clone();
        torn.truncate(b3.len() - 3);
        fs::write(d.join("log.10.0"), &torn).unwrap();
        let files = read_log_dir(d).unwrap();
        let info = files[2].info();
        assert_eq!(
            (
                info.first_decree,
                info.last_decree,
                info.valid_end,
                info.size
            ),
            (0, 0, 0, torn.len() as u64)
        );
        let mut torn = b2.clone();
        torn.extend_from_slice(&b3[..40]);
        fs::write(d.join("log.2.0"), &torn).unwrap();
        match read_log_dir(d) {
            Err(Error::Corruption { path, offset, .. }) => {
                assert!(path.ends_with("log.2.0"));
                assert_eq!(offset, b2.len() as u64);
            }
            other => panic!("{other:?}"),
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(read_log_dir(empty.path()).unwrap().is_empty());
    }

    #[test]
    fn log_names() {
        assert_eq!(parse_log_name("log.1.0"), Some((1, 0)));
        assert_eq!(parse_log_name("log.007.123"), Some((7, 123)));
        for bad in [
            "log.1",
            "log.1.",
            "log..1",
            "log.1.2.3",
            "log.a.1",
            "log.+1.2",
            "xlog.1.2",
            "log.1.2 ",
        ] {
            assert_eq!(parse_log_name(bad), None, "{bad}");
        }
    }
}
