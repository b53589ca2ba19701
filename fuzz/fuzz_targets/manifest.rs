//! Manifest checks over crafted entries: names (any bytes, as UTF-8 lossy),
//! sizes and digests against a directory of a few real files. Verification
//! and copying must refuse what is not a plain name, never touch anything
//! outside the directories, and never panic.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use _rust::filecopy::{check_name, copy_and_hash, hash_file, verify_manifest, ManifestEntry};
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
    match verify_manifest(&src, &entries) {
        Ok(()) => {
            for e in &entries {
                let (size, digest) = hash_file(&src.join(&e.name)).unwrap();
                assert_eq!((size, &digest), (e.size, &e.digest));
            }
        }
        Err(Error::InvalidArgument(_)) => {}
        Err(Error::ChecksumMismatch { .. }) | Err(Error::Io(_)) => assert!(all_plain),
        Err(e) => panic!("{e:?}"),
    }
    // Copy the same names into a fresh destination.
    let dst = root().join("dst");
    let _ = fs::remove_dir_all(&dst);
    let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    match copy_and_hash(&src, &dst, &names, input.first() == Some(&1), false) {
        Ok(manifest) => {
            assert!(all_plain);
            verify_manifest(&dst, &manifest).expect("a copy verifies against its own manifest");
        }
        Err(Error::InvalidArgument(_)) | Err(Error::Io(_)) => {}
        Err(e) => panic!("{e:?}"),
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
