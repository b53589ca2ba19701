//! Receiving a checkpoint as checksummed chunks: the follower's half of learning (DESIGN.md §5,
//! APP), embedded and over the wire, and of a partition move.
//!
//! Each chunk is checked (its name in the manifest, its crc32c, its end within the file's size,
//! no hole before it), written at its offset and hashed while it is still in cache, so a file
//! that arrives in order is verified without being read back. A file that had bytes from an
//! earlier try, or that is sent again from an earlier offset, is hashed from disk up to the
//! chunk first. [`Receiver::finish`] verifies every file against the manifest (size and BLAKE3)
//! and only then makes them durable; the caller removes a file that failed, so a retry copies it
//! again, and never opens one.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{check_name, fsync_dir, hash_open, open_regular, start_writeback, ManifestEntry};
use crate::error::{Error, Result};

/// Read size when a file's bytes already on disk are hashed before a chunk.
const CATCH_UP: usize = 1 << 20;

struct Incoming {
    file: File,
    path: PathBuf,
    /// The file's size as this receiver left it.
    held: u64,
    hasher: blake3::Hasher,
    /// `hasher` has taken the file's bytes `[0, hashed)`, in order.
    hashed: u64,
}

/// Writes the chunks of one checkpoint into a directory and verifies them.
pub struct Receiver {
    dir: PathBuf,
    entries: Vec<ManifestEntry>,
    index: HashMap<String, usize>,
    open: HashMap<usize, Incoming>,
    sync: bool,
}

fn open_for_write(path: &Path) -> Result<(File, u64)> {
    // O_NOFOLLOW: never written through a link; O_NONBLOCK: a FIFO planted there fails the open
    // (ENXIO) instead of blocking it, and is refused below.
    // Miri's open() knows no O_NONBLOCK; its tests make no FIFO.
    let nonblock = if cfg!(miri) { 0 } else { libc::O_NONBLOCK };
    // Read too: bytes already there are hashed before the chunks that follow them.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | nonblock)
        .open(path)
        .map_err(|e| Error::io_at(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io_at(path, e))?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok((file, meta.len()))
}

impl Incoming {
    /// Hash the file's bytes on disk from `hashed` up to `end`.
    fn catch_up(&mut self, end: u64) -> Result<()> {
        let mut buf =
            vec![0u8; CATCH_UP.min(usize::try_from(end - self.hashed).unwrap_or(CATCH_UP))];
        while self.hashed < end {
            let n = buf
                .len()
                .min(usize::try_from(end - self.hashed).unwrap_or(usize::MAX));
            let got = self
                .file_read_at(&mut buf[..n], self.hashed)
                .map_err(|e| Error::io_at(&self.path, e))?;
            if got == 0 {
                return Err(Error::file_changed(&self.path, end, self.hashed));
            }
            self.hasher.update(&buf[..got]);
            self.hashed += got as u64;
        }
        Ok(())
    }

    fn file_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Receiver {
    /// A receiver into `dir` (which exists) for the files of `manifest`: plain names, each once.
    /// With `sync`, [`Receiver::finish`] makes every file and `dir` durable.
    pub fn new(dir: &Path, manifest: Vec<ManifestEntry>, sync: bool) -> Result<Self> {
        let mut index = HashMap::with_capacity(manifest.len());
        for (i, entry) in manifest.iter().enumerate() {
            check_name(&entry.name)?;
            if index.insert(entry.name.clone(), i).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "manifest names {:?} twice",
                    entry.name
                )));
            }
        }
        Ok(Receiver {
            dir: dir.to_path_buf(),
            entries: manifest,
            index,
            open: HashMap::new(),
            sync,
        })
    }

    /// Check one chunk and write it at `offset` of its file.
    pub fn write(&mut self, name: &str, offset: i128, data: &[u8], crc: u32) -> Result<()> {
        let Some(&i) = self.index.get(name) else {
            return Err(Error::InvalidArgument(format!(
                "a chunk names a file outside the manifest: {name:?}"
            )));
        };
        let path = self.dir.join(name);
        let size = self.entries[i].size;
        let actual = crate::crc::crc32c(data, 0);
        if actual != crc {
            return Err(Error::ChecksumMismatch {
                path: path.to_string_lossy().into_owned(),
                expected: format!("crc32c {crc:08x}"),
                actual: format!("crc32c {actual:08x}"),
            });
        }
        let end = offset + data.len() as i128;
        if offset < 0 || end > i128::from(size) {
            return Err(Error::ChecksumMismatch {
                path: path.to_string_lossy().into_owned(),
                expected: format!("{size} bytes"),
                actual: format!("a chunk ending at {end}"),
            });
        }
        let offset = offset as u64; // 0 <= offset <= size
        let f = match self.open.entry(i) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let (file, held) = open_for_write(&path)?;
                e.insert(Incoming {
                    file,
                    path,
                    held,
                    hasher: blake3::Hasher::new(),
                    hashed: 0,
                })
            }
        };
        if offset > f.held {
            return Err(Error::InvalidArgument(format!(
                "a chunk of {name:?} at {offset} leaves a hole after {}",
                f.held
            )));
        }
        if offset < f.held {
            // sent again from an earlier offset: take it from there
            f.file
                .set_len(offset)
                .map_err(|e| Error::io_at(&f.path, e))?;
            f.held = offset;
        }
        if f.hashed > offset {
            f.hasher.reset();
            f.hashed = 0;
        }
        f.catch_up(offset)?;
        f.file
            .write_all_at(data, offset)
            .map_err(|e| Error::io_at(&f.path, e))?;
        f.held = offset + data.len() as u64;
        f.hasher.update(data);
        f.hashed = f.held;
        if self.sync {
            start_writeback(&f.file, offset, data.len() as u64);
        }
        Ok(())
    }

    /// Verify every file of the manifest (an empty one is made if no chunk came for it), then,
    /// with `sync`, fsync each and the directory. `ChecksumMismatch` names the first file whose
    /// size or digest differs; a missing file is a `NotFound` I/O error.
    pub fn finish(&mut self) -> Result<()> {
        let mut open = std::mem::take(&mut self.open);
        let mut durable: Vec<File> = Vec::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            let path = self.dir.join(&entry.name);
            let (size, digest, file) = match open.remove(&i) {
                Some(mut f) if f.held == entry.size => {
                    f.catch_up(f.held)?;
                    let digest = f.hasher.finalize().to_hex().to_string();
                    (f.held, digest, f.file)
                }
                Some(f) => {
                    drop(f.file);
                    let file = open_regular(&path, false)?;
                    let (size, digest) = hash_open(&file, &path)?;
                    (size, digest, file)
                }
                None => {
                    if entry.size == 0 {
                        drop(open_for_write(&path)?);
                    }
                    let file = open_regular(&path, false)?;
                    let (size, digest) = hash_open(&file, &path)?;
                    (size, digest, file)
                }
            };
            if size != entry.size || digest != entry.digest {
                return Err(Error::ChecksumMismatch {
                    path: path.to_string_lossy().into_owned(),
                    expected: entry.digest.clone(),
                    actual: digest,
                });
            }
            durable.push(file);
        }
        if self.sync {
            for (file, entry) in durable.iter().zip(&self.entries) {
                file.sync_all()
                    .map_err(|e| Error::io_at(&self.dir.join(&entry.name), e))?;
            }
            fsync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Close every file now (they also close when the receiver is dropped).
    pub fn close(&mut self) {
        self.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 4096) as u8).collect()
    }

    fn entry(name: &str, d: &[u8]) -> ManifestEntry {
        ManifestEntry {
            name: name.to_string(),
            size: d.len() as u64,
            digest: blake3::hash(d).to_hex().to_string(),
        }
    }

    fn crc(d: &[u8]) -> u32 {
        crate::crc::crc32c(d, 0)
    }

    #[test]
    fn in_order_resumed_and_resent() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (data(3000), data(1000));
        let manifest = vec![entry("a", &a), entry("b", &b), entry("empty", b"")];
        // "b" has a prefix from an earlier try
        fs::write(dir.path().join("b"), &b[..400]).unwrap();
        let mut r = Receiver::new(dir.path(), manifest.clone(), true).unwrap();
        r.write("a", 0, &a[..1000], crc(&a[..1000])).unwrap();
        r.write("a", 1000, &a[1000..2000], crc(&a[1000..2000]))
            .unwrap();
        // sent again from an earlier offset
        r.write("a", 500, &a[500..], crc(&a[500..])).unwrap();
        r.write("b", 400, &b[400..], crc(&b[400..])).unwrap();
        r.finish().unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), a);
        assert_eq!(fs::read(dir.path().join("b")).unwrap(), b);
        assert_eq!(fs::read(dir.path().join("empty")).unwrap(), b"");
        // every file already whole: nothing sent, all verified from disk
        Receiver::new(dir.path(), manifest, false)
            .unwrap()
            .finish()
            .unwrap();
    }

    #[test]
    fn bad_chunks_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = data(100);
        let manifest = vec![entry("a", &a)];
        let mut r = Receiver::new(dir.path(), manifest.clone(), false).unwrap();
        assert!(matches!(
            r.write("x", 0, b"1", crc(b"1")),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            r.write("a", 0, &a, crc(&a) ^ 1),
            Err(Error::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            r.write("a", 99, b"12", crc(b"12")),
            Err(Error::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            r.write("a", -1, b"1", crc(b"1")),
            Err(Error::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            r.write("a", 5, b"1", crc(b"1")),
            Err(Error::InvalidArgument(_))
        ));
        // a truncated file
        r.write("a", 0, &a[..50], crc(&a[..50])).unwrap();
        assert!(matches!(r.finish(), Err(Error::ChecksumMismatch { .. })));
        // a changed byte
        let mut bad = a.clone();
        bad[7] ^= 1;
        let mut r = Receiver::new(dir.path(), manifest.clone(), false).unwrap();
        r.write("a", 0, &bad, crc(&bad)).unwrap();
        match r.finish() {
            Err(Error::ChecksumMismatch { path, .. }) => assert!(path.ends_with("a")),
            other => panic!("{other:?}"),
        }
        // missing
        fs::remove_file(dir.path().join("a")).unwrap();
        assert!(matches!(
            Receiver::new(dir.path(), manifest, false).unwrap().finish(),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
        for bad in ["", "..", "a/b"] {
            assert!(matches!(
                Receiver::new(dir.path(), vec![entry(bad, b"")], false),
                Err(Error::InvalidArgument(_))
            ));
        }
        assert!(matches!(
            Receiver::new(dir.path(), vec![entry("a", b""), entry("a", b"")], false),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "symlink and open(O_NOFOLLOW) of a link: not under miri"
    )]
    fn never_writes_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, b"keep").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("a")).unwrap();
        let mut r = Receiver::new(dir.path(), vec![entry("a", b"x")], false).unwrap();
        assert!(matches!(
            r.write("a", 0, b"x", crc(b"x")),
            Err(Error::Io(_))
        ));
        assert_eq!(fs::read(&secret).unwrap(), b"keep");
    }
}
