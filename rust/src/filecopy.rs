//! Checkpoint file copy with blake3 hashing, and manifest verification.
//!
//! Files are read, never memory-mapped: a file truncated under a mapping kills
//! the process with SIGBUS, while a read just comes back short. A file whose
//! size or mtime moves while it is read is reported as [`Error::FileChanged`].
//! Names are single plain components and are never followed when they are
//! symbolic links: a checkpoint must not ship a link target's bytes.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;

use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

use crate::error::{Error, Result};

/// Read size of the single-threaded hashing and copying loops.
const CHUNK: usize = 2 << 20;
/// Files at least this large are copied by the kernel while being hashed on
/// every core; smaller ones are read, hashed and written in one pass.
const PARALLEL_HASH_MIN: u64 = 4 << 20;
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
fn open_regular(path: &Path, follow: bool) -> Result<File> {
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
fn hash_open(file: &File, path: &Path) -> Result<(u64, String)> {
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

/// A new file at `dst`; never opens through a link or an existing file.
fn create_new(dst: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dst)
        .map_err(|e| Error::io_at(dst, e))
}

/// Copy the open `input` (at `src`) to a new file `dst` and hash it; fsync
/// `dst` when `sync`.
///
/// Small files are read once, hashed and written in the same pass. A large
/// file is copied by the kernel (`copy_file_range`, as `shutil.copyfile`
/// does) while other threads hash the source on every core (reading it with
/// pread, so the copy's file offset is left alone). Either way the digest is of the
/// source's bytes; `verify_manifest` checks what landed.
fn copy_one(input: &File, src: &Path, dst: &Path, sync: bool) -> Result<(u64, String)> {
    let before = input.metadata().map_err(|e| Error::io_at(src, e))?;
    let size = before.len();
    let mut output = create_new(dst)?;
    if size >= PARALLEL_HASH_MIN {
        let (copied, hashed) = thread::scope(|s| {
            let hasher = s.spawn(|| hash_open(input, src));
            // The copy reads at the descriptor's offset, the hasher with pread.
            let copied = io::copy(&mut input.take(size.saturating_add(1)), &mut output);
            let hashed = hasher
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (copied, hashed)
        });
        let copied = copied.map_err(|e| Error::io_at(dst, e))?;
        let (hashed_size, digest) = hashed?;
        if copied != size {
            return Err(Error::file_changed(src, size, copied));
        }
        if sync {
            output.sync_all().map_err(|e| Error::io_at(dst, e))?;
        }
        return Ok((hashed_size, digest));
    }
    let mut hasher = blake3::Hasher::new();
    let mut written = 0u64;
    let read = read_chunks(input, size, CHUNK, |chunk| {
        hasher.update(chunk);
        output.write_all(chunk)?;
        if sync {
            start_writeback(&output, written, chunk.len() as u64);
        }
        written += chunk.len() as u64;
        Ok(())
    })
    .map_err(|e| Error::io_at(dst, e))?;
    check_unchanged(input, src, &before, read)?;
    if sync {
        output.sync_all().map_err(|e| Error::io_at(dst, e))?;
    }
    Ok((read, hasher.finalize().to_hex().to_string()))
}

/// Ask the kernel to start writing `len` bytes at `offset` of `file` to disk
/// now, so that the final fsync finds little left to do. Best effort.
#[cfg(all(target_os = "linux", not(miri)))]
fn start_writeback(file: &File, offset: u64, len: u64) {
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
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_at(dir, e))
}

/// Copy `name` from `src_dir` into `dst_dir`, or hard-link it when `link`
/// and the link can be made: its manifest entry.
fn copy_entry(
    src_dir: &Path,
    dst_dir: &Path,
    name: &str,
    link: bool,
    sync: bool,
) -> Result<(u64, String)> {
    let src = src_dir.join(name);
    let dst = dst_dir.join(name);
    // Refuses a symbolic link before anything is made of it (a hard link to
    // a symlink is a symlink).
    let input = open_regular(&src, false)?;
    // Never write through an old link to the source's inode.
    if fs::symlink_metadata(&dst).is_ok() {
        fs::remove_file(&dst).map_err(|e| Error::io_at(&dst, e))?;
    }
    let result = if link && fs::hard_link(&src, &dst).is_ok() {
        open_regular(&dst, false).and_then(|f| hash_open(&f, &dst))
    } else {
        copy_one(&input, &src, &dst, sync)
    };
    if result.is_err() {
        // What is there was not verified: leave nothing that looks like a copy.
        let _ = fs::remove_file(&dst);
    }
    result
}

/// Copy (or hard-link, falling back to a copy) `names` from `src_dir` into
/// `dst_dir` (created with its parents), fsync each copy and `dst_dir` when
/// `sync`, and return the manifest entries.
pub fn copy_and_hash(
    src_dir: &Path,
    dst_dir: &Path,
    names: &[String],
    link: bool,
    sync: bool,
) -> Result<Vec<ManifestEntry>> {
    for name in names {
        check_name(name)?;
    }
    fs::create_dir_all(dst_dir).map_err(|e| Error::io_at(dst_dir, e))?;
    let mut manifest = Vec::with_capacity(names.len());
    for name in names {
        let (size, digest) = copy_entry(src_dir, dst_dir, name, link, sync)?;
        manifest.push(ManifestEntry {
            name: name.clone(),
            size,
            digest,
        });
    }
    if sync {
        fsync_dir(dst_dir)?;
    }
    Ok(manifest)
}

/// Check every entry's size and digest; `ChecksumMismatch` on the first that
/// differs, a `NotFound` I/O error for a missing file, `InvalidArgument` for
/// a name that is not a plain file name or is a symbolic link.
pub fn verify_manifest(dir: &Path, manifest: &[ManifestEntry]) -> Result<()> {
    for entry in manifest {
        check_name(&entry.name)?;
    }
    for entry in manifest {
        let path: PathBuf = dir.join(&entry.name);
        let (size, digest) = hash_open(&open_regular(&path, false)?, &path)?;
        if size != entry.size || digest != entry.digest {
            return Err(Error::ChecksumMismatch {
                path: path.to_string_lossy().into_owned(),
                expected: entry.digest.clone(),
                actual: digest,
            });
        }
    }
    Ok(())
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
            PARALLEL_HASH_MIN as usize + 1,
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

    /// The small-file paths (one pass read, hash, write; links; fsync), small
    /// enough for miri.
    #[test]
    fn copy_small_files() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        let contents = [data(3000), Vec::new()];
        for (n, c) in names.iter().zip(&contents) {
            fs::write(src.path().join(n), c).unwrap();
        }
        // Miri cannot make hard links (linkat).
        let links: &[bool] = if cfg!(miri) { &[false] } else { &[false, true] };
        for &link in links {
            let manifest = copy_and_hash(src.path(), dst.path(), &names, link, true).unwrap();
            for ((entry, n), c) in manifest.iter().zip(&names).zip(&contents) {
                assert_eq!((entry.size, &entry.digest), (c.len() as u64, &hex(c)));
                assert_eq!(&fs::read(dst.path().join(n)).unwrap(), c);
            }
            verify_manifest(dst.path(), &manifest).unwrap();
            assert_eq!(
                hash_file(&src.path().join("a")).unwrap(),
                (3000, hex(&contents[0]))
            );
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "copy_file_range and a 9 MiB file: not under miri")]
    fn copy_link_and_verify() {
        let src = tempfile::tempdir().unwrap();
        let dst_root = tempfile::tempdir().unwrap();
        let dst = dst_root.path().join("a/b");
        let names: Vec<String> = ["small", "big", "empty"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let contents = [data(1000), data(9 << 20), Vec::new()];
        for (n, c) in names.iter().zip(&contents) {
            fs::write(src.path().join(n), c).unwrap();
        }
        for link in [false, true, false] {
            let manifest = copy_and_hash(src.path(), &dst, &names, link, true).unwrap();
            for ((entry, n), c) in manifest.iter().zip(&names).zip(&contents) {
                assert_eq!(
                    entry,
                    &ManifestEntry {
                        name: n.clone(),
                        size: c.len() as u64,
                        digest: hex(c)
                    }
                );
                assert_eq!(&fs::read(dst.join(n)).unwrap(), c);
            }
            verify_manifest(&dst, &manifest).unwrap();
        }
        // The last copy replaced the hard links: writing to it leaves the source alone.
        let manifest = copy_and_hash(src.path(), &dst, &names, false, true).unwrap();
        let mut bad = fs::read(dst.join("big")).unwrap();
        bad[5 << 20] ^= 1;
        fs::write(dst.join("big"), &bad).unwrap();
        assert_eq!(fs::read(src.path().join("big")).unwrap(), contents[1]);
        match verify_manifest(&dst, &manifest) {
            Err(Error::ChecksumMismatch {
                path,
                expected,
                actual,
            }) => {
                assert!(path.ends_with("big"));
                assert_eq!(expected, hex(&contents[1]));
                assert_eq!(actual, hex(&bad));
            }
            other => panic!("{other:?}"),
        }
        // Size mismatch with the same content prefix.
        fs::write(dst.join("small"), &contents[0][..999]).unwrap();
        assert!(matches!(
            verify_manifest(&dst, &manifest[..1]),
            Err(Error::ChecksumMismatch { .. })
        ));
        fs::remove_file(dst.join("empty")).unwrap();
        assert!(matches!(
            verify_manifest(&dst, &manifest[2..]),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
        assert!(matches!(
            copy_and_hash(src.path(), &dst, &["nope".to_string()], true, true),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
    }

    #[test]
    fn bad_names() {
        let src = tempfile::tempdir().unwrap();
        let dst = src.path().join("never");
        for bad in ["", ".", "..", "a/b", "a\\b", "/abs"] {
            assert!(matches!(
                copy_and_hash(src.path(), &dst, &[bad.to_string()], false, true),
                Err(Error::InvalidArgument(_))
            ));
            let entry = ManifestEntry {
                name: bad.to_string(),
                size: 0,
                digest: String::new(),
            };
            assert!(matches!(
                verify_manifest(src.path(), &[entry]),
                Err(Error::InvalidArgument(_))
            ));
        }
        assert!(!dst.exists());
        assert!(check_name("..a").is_ok());
        assert!(matches!(check_name("a\0b"), Err(Error::InvalidArgument(_))));
    }

    #[test]
    #[cfg_attr(miri, ignore = "mkfifo is FFI, which miri cannot run")]
    fn links_and_special_files_are_refused() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let secret = src.path().join("secret");
        fs::write(&secret, b"not for shipping").unwrap();
        std::os::unix::fs::symlink(&secret, src.path().join("link")).unwrap();
        std::os::unix::fs::symlink("missing", src.path().join("dangling")).unwrap();
        let fifo = src.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for name in ["link", "dangling", "fifo"] {
            for link in [false, true] {
                assert!(
                    matches!(
                        copy_and_hash(src.path(), dst.path(), &[name.to_string()], link, false),
                        Err(Error::InvalidArgument(_))
                    ),
                    "{name} {link}"
                );
                assert!(fs::symlink_metadata(dst.path().join(name)).is_err());
            }
            let entry = ManifestEntry {
                name: name.to_string(),
                size: 16,
                digest: hex(b"not for shipping"),
            };
            assert!(matches!(
                verify_manifest(src.path(), &[entry]),
                Err(Error::InvalidArgument(_))
            ));
        }
        // A link planted where the copy goes is replaced, never written through.
        std::os::unix::fs::symlink(&secret, dst.path().join("secret")).unwrap();
        fs::write(src.path().join("other"), b"x").unwrap();
        let m = copy_and_hash(
            src.path(),
            dst.path(),
            &["secret".to_string()],
            false,
            false,
        )
        .unwrap();
        assert!(!fs::symlink_metadata(dst.path().join("secret"))
            .unwrap()
            .is_symlink());
        verify_manifest(dst.path(), &m).unwrap();
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
            let mut changed = 0;
            for _ in 0..2000 {
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
