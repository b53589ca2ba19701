//! Checkpoint files: BLAKE3 hashing (the manifest of a checkpoint, a learn/ file checked again on
//! resume) and, in [`receive`], the follower's receive of a checkpoint's chunks.
//!
//! Files are read, never memory-mapped: a file truncated under a mapping kills
//! the process with SIGBUS, while a read just comes back short. A file whose
//! size or mtime moves while it is read is reported as [`Error::FileChanged`].
//! Names are single plain components and are never followed when they are
//! symbolic links: a checkpoint must not ship a link target's bytes.

pub mod receive;

use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;

use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

use crate::error::{Error, Result};

/// Read size of the single-threaded hashing loop.
const CHUNK: usize = 2 << 20;
/// A big file is hashed as independent BLAKE3 subtrees of this many bytes (a
/// power of two, so each is a whole subtree of the file's tree), shared out
/// among the cores and merged at the end: the same hash as one pass.
const SUBTREE: u64 = 4 << 20;
/// Read size within a subtree: small enough to stay in a core's L2 cache
/// between the read and the hash, big enough for BLAKE3's SIMD lanes.
const SUBTREE_READ: usize = 256 << 10;

/// (file name, size, blake3 hex digest)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub name: String,
    pub size: u64,
    pub digest: String,
}

/// Reject names that are not a single plain path component.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(Error::InvalidArgument(format!(
            "invalid file name in a manifest: {name:?}"
        )));
    }
    Ok(())
}

/// Open `path` for reading; it must be a regular file. Unless `follow`, a
/// symbolic link is refused instead of followed (`O_NOFOLLOW`). `O_NONBLOCK`
/// keeps a FIFO from blocking the open; it changes nothing for regular files.
pub(crate) fn open_regular(path: &Path, follow: bool) -> Result<File> {
    // Miri's open() knows no O_NONBLOCK; its tests make no FIFO.
    let nonblock = if cfg!(miri) { 0 } else { libc::O_NONBLOCK };
    let flags = nonblock | if follow { 0 } else { libc::O_NOFOLLOW };
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        Err(e) if !follow && e.raw_os_error() == Some(libc::ELOOP) && is_symlink(path) => {
            return Err(Error::InvalidArgument(format!(
                "{} is a symbolic link, not a file",
                path.display()
            )))
        }
        Err(e) => return Err(Error::io_at(path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io_at(path, e))?;
    if meta.is_dir() {
        return Err(Error::io_at(
            path,
            io::Error::from_raw_os_error(libc::EISDIR),
        ));
    }
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Read from `offset` until `buf` is full or the end of the file.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Feed the bytes of `file` from offset 0 to `sink` in order, in reads of
/// `chunk` bytes. Reads are positional, so another thread may copy from the
/// same descriptor meanwhile. Stops one byte past `size` (a file that grows is
/// caught without reading all of it). Returns the byte count.
fn read_chunks(
    file: &File,
    size: u64,
    chunk: usize,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let limit = size.saturating_add(1);
    let want = |offset: u64| chunk.min(usize::try_from(limit - offset).unwrap_or(usize::MAX));
    let mut buf = vec![0u8; want(0)];
    let mut total = 0u64;
    while total < limit {
        let n = want(total);
        let got = read_full_at(file, &mut buf[..n], total)?;
        if got == 0 {
            break;
        }
        sink(&buf[..got])?;
        total += got as u64;
    }
    Ok(total)
}

/// `FileChanged` unless `file` still has the size and mtime of `before` and
/// exactly that many bytes were read.
fn check_unchanged(file: &File, path: &Path, before: &Metadata, read: u64) -> Result<()> {
    let after = file.metadata().map_err(|e| Error::io_at(path, e))?;
    if read != before.len() {
        return Err(Error::file_changed(path, before.len(), read));
    }
    if after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
    {
        return Err(Error::file_changed(path, before.len(), after.len()));
    }
    Ok(())
}

/// The chaining value of the subtree `[start, start + len)` of a `size`-byte
/// input whose [`SUBTREE`]-aligned leaves are `leaves`, per the left-balanced
/// tree of the BLAKE3 paper (section 2.1).
fn merge_leaves(leaves: &[ChainingValue], start: u64, len: u64) -> ChainingValue {
    if len <= SUBTREE {
        return leaves[(start / SUBTREE) as usize];
    }
    let left = left_subtree_len(len);
    merge_subtrees_non_root(
        &merge_leaves(leaves, start, left),
        &merge_leaves(leaves, start + left, len - left),
        Mode::Hash,
    )
}

/// Hash `size` bytes of `file` (`size > SUBTREE`) on every core: each thread
/// takes the next [`SUBTREE`] leaf, reads it in small pieces and hashes them
/// while they are still in cache. Returns the bytes read (short of `size`
/// when the file shrank, one more when it grew) and the hash.
fn hash_subtrees(file: &File, size: u64) -> io::Result<(u64, blake3::Hash)> {
    debug_assert!(size > SUBTREE);
    let count = usize::try_from(size.div_ceil(SUBTREE)).map_err(io::Error::other)?;
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count);
    let next = AtomicUsize::new(0);
    // The smallest offset at which a read came back short.
    let short_at = AtomicU64::new(u64::MAX);
    let mut leaves = vec![[0u8; 32]; count];
    let results: Vec<io::Result<Vec<(usize, ChainingValue)>>> = thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> io::Result<Vec<(usize, ChainingValue)>> {
                    let mut buf = vec![0u8; SUBTREE_READ];
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count || short_at.load(Ordering::Relaxed) != u64::MAX {
                            return Ok(done);
                        }
                        let start = i as u64 * SUBTREE;
                        let end = (start + SUBTREE).min(size);
                        let mut hasher = blake3::Hasher::new();
                        hasher.set_input_offset(start);
                        let mut offset = start;
                        while offset < end {
                            let n = SUBTREE_READ.min((end - offset) as usize);
                            let got = read_full_at(file, &mut buf[..n], offset)?;
                            hasher.update(&buf[..got]);
                            offset += got as u64;
                            if got < n {
                                short_at.fetch_min(offset, Ordering::Relaxed);
                                return Ok(done);
                            }
                        }
                        done.push((i, hasher.finalize_non_root()));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for result in results {
        for (i, cv) in result? {
            leaves[i] = cv;
        }
    }
    let short_at = short_at.into_inner();
    if short_at != u64::MAX {
        return Ok((short_at, blake3::Hash::from_bytes([0; 32])));
    }
    // One byte past the end tells a file that grew.
    let grown = read_full_at(file, &mut [0u8; 1], size)? as u64;
    let left = left_subtree_len(size);
    let root = merge_subtrees_root(
        &merge_leaves(&leaves, 0, left),
        &merge_leaves(&leaves, left, size - left),
        Mode::Hash,
    );
    Ok((size + grown, root))
}

/// (size, blake3 hex digest) of an open file, read from offset 0.
pub(crate) fn hash_open(file: &File, path: &Path) -> Result<(u64, String)> {
    let before = file.metadata().map_err(|e| Error::io_at(path, e))?;
    let size = before.len();
    // One subtree or less is one thread's work anyway.
    let (read, hash) = if size > SUBTREE {
        hash_subtrees(file, size)
    } else {
        let mut hasher = blake3::Hasher::new();
        read_chunks(file, size, CHUNK, |chunk| {
            hasher.update(chunk);
            Ok(())
        })
        .map(|read| (read, hasher.finalize()))
    }
    .map_err(|e| Error::io_at(path, e))?;
    check_unchanged(file, path, &before, read)?;
    Ok((read, hash.to_hex().to_string()))
}

/// (size, blake3 lowercase hex digest) of a file (following a symbolic link).
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    hash_open(&open_regular(path, true)?, path)
}

/// Ask the kernel to start writing `len` bytes at `offset` of `file` to disk
/// now, so that the final fsync finds little left to do. Best effort.
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range only reads its integer arguments; the fd is
    // open for the whole call because `file` is borrowed. Errors are ignored
    // on purpose (the fsync that follows reports any real failure).
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(any(not(target_os = "linux"), miri))]
pub(crate) fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_at(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 4096) as u8).collect()
    }

    fn hex(b: &[u8]) -> String {
        blake3::hash(b).to_hex().to_string()
    }

    #[test]
    #[cfg_attr(miri, ignore = "hashes tens of MiB: hours under miri")]
    fn hash_small_and_big() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            0usize,
            1,
            CHUNK - 1,
            CHUNK,
            SUBTREE as usize,
            SUBTREE as usize + 1,
            2 * SUBTREE as usize,
            2 * SUBTREE as usize + 1,
            3 * SUBTREE as usize - 1,
            5 * SUBTREE as usize + 1025,
            8 * SUBTREE as usize,
            3 * CHUNK + 17,
        ] {
            let p = dir.path().join("f");
            let d = data(n);
            fs::write(&p, &d).unwrap();
            assert_eq!(hash_file(&p).unwrap(), (n as u64, hex(&d)), "{n}");
        }
        assert!(matches!(
            hash_file(&dir.path().join("missing")),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
    }

    #[test]
    fn bad_names() {
        for bad in ["", ".", "..", "a/b", "a\\b", "/abs", "a\0b"] {
            assert!(
                matches!(check_name(bad), Err(Error::InvalidArgument(_))),
                "{bad:?}"
            );
        }
        assert!(check_name("..a").is_ok());
    }

    #[test]
    #[cfg_attr(miri, ignore = "mkfifo is FFI, which miri cannot run")]
    fn links_and_special_files_are_refused() {
        let src = tempfile::tempdir().unwrap();
        let secret = src.path().join("secret");
        fs::write(&secret, b"not for shipping").unwrap();
        std::os::unix::fs::symlink(&secret, src.path().join("link")).unwrap();
        std::os::unix::fs::symlink("missing", src.path().join("dangling")).unwrap();
        let fifo = src.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for name in ["link", "dangling", "fifo"] {
            assert!(
                matches!(
                    open_regular(&src.path().join(name), false),
                    Err(Error::InvalidArgument(_))
                ),
                "{name}"
            );
        }
        // hash_file follows links (a path, not a checkpoint entry) but refuses a FIFO.
        assert_eq!(hash_file(&src.path().join("link")).unwrap().0, 16);
        assert!(matches!(hash_file(&fifo), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            hash_file(src.path()),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::IsADirectory
        ));
    }

    #[test]
    fn a_change_seen_after_reading_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, data(1000)).unwrap();
        let file = File::open(&p).unwrap();
        let before = file.metadata().unwrap();
        check_unchanged(&file, &p, &before, 1000).unwrap();
        assert!(matches!(
            check_unchanged(&file, &p, &before, 999),
            Err(Error::FileChanged {
                expected_size: 1000,
                actual_size: 999,
                ..
            })
        ));
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(10)
            .unwrap();
        assert!(matches!(
            check_unchanged(&file, &p, &before, 1000),
            Err(Error::FileChanged {
                expected_size: 1000,
                actual_size: 10,
                ..
            })
        ));
    }

    /// Truncating a big file while it is hashed must give `FileChanged` or a
    /// whole, correct digest; with the old memory-mapped hashing it was SIGBUS.
    #[test]
    #[cfg_attr(miri, ignore = "hashes 24 MiB many times: too slow under miri")]
    fn truncated_while_hashed() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let size = 6 * SUBTREE;
        let zeros = vec![0u8; size as usize];
        fs::write(&p, &zeros).unwrap();
        let whole = (size, hex(&zeros));
        let empty = (0, hex(b""));
        let stop = AtomicBool::new(false);
        let changed = thread::scope(|s| {
            s.spawn(|| {
                let f = OpenOptions::new().write(true).open(&p).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    f.set_len(0).unwrap();
                    thread::yield_now();
                    f.set_len(size).unwrap();
                }
            });
            // until the race was seen a few times: a count of tries was too few once, on a
            // loaded machine where the truncating thread rarely ran between two hashes
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let mut changed = 0;
            while std::time::Instant::now() < deadline {
                match hash_file(&p) {
                    Ok(got) => assert!(got == whole || got == empty, "{got:?}"),
                    Err(Error::FileChanged { .. }) => changed += 1,
                    Err(other) => panic!("{other:?}"),
                }
                if changed >= 3 {
                    break;
                }
            }
            stop.store(true, Ordering::Relaxed);
            changed
        });
        assert!(changed >= 1);
    }
}
