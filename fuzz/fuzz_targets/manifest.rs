//! Manifest checks over crafted entries: names (any bytes, as UTF-8 lossy),
//! sizes and digests against a directory of a few real files. The receiver
//! (the follower's half of a checkpoint copy) is sent each source file's bytes
//! as crafted chunks: it must refuse what is not a plain name, pass only files
//! that match their entries, never touch anything outside the directories, and
//! never panic.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use _rust::filecopy::receive::Receiver;
use _rust::filecopy::{check_name, hash_file, ManifestEntry};
use _rust::Error;
use libfuzzer_sys::fuzz_target;

const FILES: [(&str, &[u8]); 4] = [
    ("a.sst", b"alpha"),
    ("empty", b""),
    ("..a", b"dots"),
    ("CURRENT", b"MANIFEST-000001\n"),
];

fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let r = std::env::temp_dir().join(format!("pegasus-fuzz-manifest-{}", std::process::id()));
        let src = r.join("src");
        fs::create_dir_all(&src).unwrap();
        for (name, data) in FILES {
            fs::write(src.join(name), data).unwrap();
        }
        std::os::unix::fs::symlink(src.join("a.sst"), src.join("link")).unwrap();
        fs::write(r.join("outside"), b"never shipped").unwrap();
        r
    })
}

fn plain(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

fuzz_target!(|input: &[u8]| {
    let src = root().join("src");
    // Entries separated by 0xFF: name bytes, then a size byte after 0xFE.
    let mut entries = Vec::new();
    for raw in input.split(|&b| b == 0xFF).take(8) {
        let (name, size) = match raw.iter().position(|&b| b == 0xFE) {
            Some(i) => (&raw[..i], raw.get(i + 1).copied().unwrap_or(0)),
            None => (raw, 0),
        };
        let name = String::from_utf8_lossy(name).into_owned();
        assert_eq!(check_name(&name).is_ok(), plain(&name), "{name:?}");
        let digest = if size % 2 == 0 {
            hash_file(&src.join("a.sst")).unwrap().1
        } else {
            String::from_utf8_lossy(&input[..input.len().min(64)]).into_owned()
        };
        entries.push(ManifestEntry {
            name,
            size: u64::from(size),
            digest,
        });
    }
    let all_plain = entries.iter().all(|e| plain(&e.name));
    let dst = root().join("dst");
    let _ = fs::remove_dir_all(&dst);
    fs::create_dir_all(&dst).unwrap();
    // chunk length and the offset it is sent at, from the input's last bytes
    let step = usize::from(input.last().copied().unwrap_or(1).max(1));
    let back = u64::from(input.first().copied().unwrap_or(0) % 4);
    match Receiver::new(&dst, entries.clone(), false) {
        Err(Error::InvalidArgument(_)) => {}
        Err(e) => panic!("{e:?}"),
        Ok(mut r) => {
            assert!(all_plain);
            for e in &entries {
                let path = src.join(&e.name);
                // the source never sends a link's bytes (read_chunks opens with O_NOFOLLOW)
                let Ok(meta) = fs::symlink_metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let data = fs::read(&path).unwrap();
                let mut at = 0usize;
                while at < data.len() {
                    let piece = &data[at..data.len().min(at + step)];
                    let offset = (at as u64).saturating_sub(back) as i128;
                    let piece = &data[offset as usize..offset as usize + piece.len()];
                    match r.write(&e.name, offset, piece, _rust::crc::crc32c(piece, 0)) {
                        Ok(())
                        | Err(Error::ChecksumMismatch { .. })
                        | Err(Error::InvalidArgument(_)) => {}
                        Err(other) => panic!("{other:?}"),
                    }
                    at += step;
                }
            }
            match r.finish() {
                Ok(()) => {
                    for e in &entries {
                        let (size, digest) = hash_file(&dst.join(&e.name)).unwrap();
                        assert_eq!((size, &digest), (e.size, &e.digest));
                    }
                }
                Err(Error::ChecksumMismatch { .. })
                | Err(Error::Io(_))
                | Err(Error::InvalidArgument(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    check_outside(root());
});

/// Nothing was written next to the directories.
fn check_outside(root: &Path) {
    for entry in fs::read_dir(root).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            ["src", "dst", "outside"].contains(&name.to_str().unwrap()),
            "{name:?}"
        );
    }
    assert_eq!(fs::read(root.join("outside")).unwrap(), b"never shipped");
}
