//! Log file scans over crafted file contents (sealed blocks, raw bytes, torn
//! blocks, zero tails; see common.rs), split in two: two log files of a directory, scanned whole and in
//! `max_bytes` steps. Torn tails, corruption and clean ends must each be
//! reported, never a panic, and the stepwise scan must agree with the whole one.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use _rust::logscan::{read_log_dir, read_log_file};
use _rust::Error;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("pegasus-fuzz-log-scan-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|input: &[u8]| {
    // First byte: where to split (in 1/255ths) and the max_bytes step.
    let Some((&ctl, records)) = input.split_first() else {
        return;
    };
    let data = &common::log_of(records)[..];
    let split = data.len() * usize::from(ctl) / 255;
    let step = u64::from(ctl % 64) * 7 + 1;
    let d = dir();
    let (a, b) = (d.join("log.1.0"), d.join("log.2.0"));
    fs::write(&a, &data[..split]).unwrap();
    fs::write(&b, &data[split..]).unwrap();

    for path in [&a, &b] {
        let size = fs::metadata(path).unwrap().len();
        let whole = read_log_file(path, 0, 0);
        if let Ok(f) = &whole {
            assert!(f.end <= size);
            assert_eq!(f.torn, f.end != size);
            let mut out = Vec::new();
            f.mutations(0, &mut out).expect("verified blocks decode");
        }
        // Stepwise, as the shipper tails a live file.
        let mut offset = 0;
        let stepped = loop {
            match read_log_file(path, offset, step) {
                Ok(f) if f.torn || f.end == size => break Ok(f.end),
                Ok(f) => {
                    assert!(f.end > offset, "a step makes progress");
                    offset = f.end;
                }
                Err(e) => break Err(e),
            }
        };
        match (&whole, stepped) {
            (Ok(f), Ok(end)) => assert_eq!(f.end, end),
            (
                Err(Error::Corruption { offset: o1, .. }),
                Err(Error::Corruption { offset: o2, .. }),
            ) => {
                assert_eq!(*o1, o2)
            }
            (w, s) => panic!("whole scan {w:?}, stepwise {s:?}"),
        }
    }
    // A torn tail is allowed only in the newest file.
    if let Ok(files) = read_log_dir(d) {
        assert!(files[..files.len() - 1].iter().all(|f| !f.torn));
    }
});
