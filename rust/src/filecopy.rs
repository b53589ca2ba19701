//! Checkpoint file copy with blake3 hashing, and manifest verification.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use crate::error::{Error, Result};

/// Read size of the hashing and copying loops.
const CHUNK: usize = 2 << 20;
/// Files up to this size are hashed or copied in one thread.
const SMALL_FILE: u64 = 4 << 20;

/// (file name, size, blake3 hex digest)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub name: String,
    pub size: u64,
    pub digest: String,
}

/// Reject names that are not a single plain path component.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\\') {
        return Err(Error::InvalidArgument(format!(
            "invalid file name in a manifest: {name:?}"
        )));
    }
    Ok(())
}

/// Feed the bytes of `file` to `sink` in order, reading the next chunk in a
/// second thread while `sink` works on the current one. Returns the byte count.
fn read_pipelined(
    file: &mut File,
    size_hint: u64,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    if size_hint <= SMALL_FILE {
        let mut buf = vec![0u8; CHUNK.min(size_hint as usize + 1).max(64 << 10)];
        let mut total = 0u64;
        loop {
            let n = read_full(file, &mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            sink(&buf[..n])?;
            total += n as u64;
        }
    }
    // Two buffers in flight: one being read, one being consumed.
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(2);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(3);
    for _ in 0..3 {
        empty_tx
            .send(vec![0u8; CHUNK])
            .expect("the receiver is alive");
    }
    thread::scope(|s| {
        s.spawn(move || {
            // Ends when the consumer hangs up (drops `empty_tx` and `full_rx`).
            while let Ok(mut buf) = empty_rx.recv() {
                match read_full(file, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if full_tx.send(Ok((buf, n))).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        let mut total = 0u64;
        let result = (|| {
            while let Ok(msg) = full_rx.recv() {
                let (buf, n) = msg?;
                sink(&buf[..n])?;
                total += n as u64;
                // The reader may be gone already; then the buffer is just dropped.
                let _ = empty_tx.send(buf);
            }
            Ok(total)
        })();
        drop(empty_tx);
        drop(full_rx);
        result
    })
}

/// Read until `buf` is full or the end of the file.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Files at least this large are hashed memory-mapped on every core.
const PARALLEL_HASH_MIN: u64 = 4 << 20;

fn open_hash(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(|e| Error::io_at(path, e))?;
    let hint = file.metadata().map_err(|e| Error::io_at(path, e))?.len();
    let mut hasher = blake3::Hasher::new();
    if hint >= PARALLEL_HASH_MIN {
        // BLAKE3's tree splits a big input across threads; the result is the same hash.
        hasher
            .update_mmap_rayon(path)
            .map_err(|e| Error::io_at(path, e))?;
        let size = hasher.count();
        return Ok((size, hasher.finalize().to_hex().to_string()));
    }
    let size = read_pipelined(&mut file, hint, |chunk| {
        hasher.update(chunk);
        Ok(())
    })
    .map_err(|e| Error::io_at(path, e))?;
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// (size, blake3 lowercase hex digest) of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    open_hash(path)
}

/// Copy `src` to a new file `dst` and hash it; fsync `dst` when `sync`.
///
/// Small files are read once, hashed and written in the same pass. A large
/// file is copied by the kernel (`copy_file_range`, as `shutil.copyfile`
/// does) while another thread hashes the source memory-mapped on every core,
/// so hashing costs next to nothing over the copy. Either way the digest is
/// of the source's bytes; `verify_manifest` checks what landed.
fn copy_one(src: &Path, dst: &Path, sync: bool) -> Result<(u64, String)> {
    let hint = fs::metadata(src).map_err(|e| Error::io_at(src, e))?.len();
    if hint >= PARALLEL_HASH_MIN {
        let (copied, hashed) = thread::scope(|s| {
            let hasher = s.spawn(|| open_hash(src));
            let copied = fs::copy(src, dst).map_err(|e| Error::io_at(dst, e));
            (copied, hasher.join())
        });
        let copied = copied?;
        let (size, digest) =
            hashed.map_err(|_| Error::InvalidArgument("hashing thread panicked".into()))??;
        if copied != size {
            return Err(Error::io_at(
                src,
                io::Error::other("file changed while being copied"),
            ));
        }
        if sync {
            File::open(dst)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io_at(dst, e))?;
        }
        return Ok((size, digest));
    }
    let mut input = File::open(src).map_err(|e| Error::io_at(src, e))?;
    let mut output = File::create(dst).map_err(|e| Error::io_at(dst, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut written = 0u64;
    let size = read_pipelined(&mut input, hint, |chunk| {
        hasher.update(chunk);
        output.write_all(chunk)?;
        if sync {
            start_writeback(&output, written, chunk.len() as u64);
        }
        written += chunk.len() as u64;
        Ok(())
    })
    .map_err(|e| Error::io_at(dst, e))?;
    if sync {
        output.sync_all().map_err(|e| Error::io_at(dst, e))?;
    }
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// Ask the kernel to start writing `len` bytes at `offset` of `file` to disk
/// now, so that the final fsync finds little left to do. Best effort.
#[cfg(target_os = "linux")]
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

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_at(dir, e))
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
        let src = src_dir.join(name);
        let dst = dst_dir.join(name);
        // Never write through an old link to the source's inode.
        if fs::symlink_metadata(&dst).is_ok() {
            fs::remove_file(&dst).map_err(|e| Error::io_at(&dst, e))?;
        }
        let linked = link && fs::hard_link(&src, &dst).is_ok();
        let (size, digest) = if linked {
            open_hash(&dst)?
        } else {
            copy_one(&src, &dst, sync)?
        };
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
/// differs, a `NotFound` I/O error for a missing file.
pub fn verify_manifest(dir: &Path, manifest: &[ManifestEntry]) -> Result<()> {
    for entry in manifest {
        check_name(&entry.name)?;
        let path: PathBuf = dir.join(&entry.name);
        let (size, digest) = open_hash(&path)?;
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
    fn hash_small_and_big() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            0usize,
            1,
            CHUNK - 1,
            CHUNK,
            SMALL_FILE as usize + 1,
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
    }
}
