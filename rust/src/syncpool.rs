//! `fdatasync` of several files at once, on a small pool of threads that lives for the process.
//!
//! The group commit of a batch of writes spread over several partitions ends in one
//! `fdatasync` per partition log. Issued one after another they cost the sum of their
//! latencies; issued together the file system overlaps them (ext4 commits the journal for all
//! of them at once). The caller runs the first itself and waits for the rest, so one file costs
//! no hand-off at all.
//!
//! A single `fdatasync` can also be started here and waited for later ([`start`]): the caller
//! goes on with other work (a secondary applies to RocksDB what it logged) while the disk
//! syncs, and no Python thread has to be scheduled to issue the call.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;

/// Worker threads, at most: a batch rarely spans more partition logs than this at once, and
/// beyond it the files wait for a free worker.
const WORKERS: usize = 8;

struct Done {
    left: Mutex<usize>,
    cv: Condvar,
}

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    queue: Mutex<Sender<Job>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..WORKERS {
            let rx = Arc::clone(&rx);
            thread::Builder::new()
                .name(format!("pf-fsync-{n}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else {
                        return;
                    };
                    job();
                })
                .expect("spawn an fsync worker");
        }
        Pool {
            queue: Mutex::new(tx),
        }
    })
}

/// Run `job` on the pool; Err(job) back when no worker is left (cannot happen while the
/// process lives), for the caller to run itself.
fn submit(job: Job) -> Result<(), Job> {
    let queue = pool().queue.lock().unwrap_or_else(|e| e.into_inner());
    queue.send(job).map_err(|e| e.0)
}

/// `fdatasync(fd)`: 0, or the errno it failed with (EINTR is retried).
#[cfg(unix)]
pub fn sync_one(fd: i32) -> i32 {
    loop {
        // SAFETY: fdatasync takes any integer; a bad descriptor is EBADF, reported as such.
        let rc = unsafe { libc::fdatasync(fd) };
        if rc == 0 {
            return 0;
        }
        let err = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if err != libc::EINTR {
            return err;
        }
    }
}

#[cfg(not(unix))]
pub fn sync_one(_fd: i32) -> i32 {
    38 // ENOSYS: the store runs on unix
}

/// `fdatasync` every one of `fds` at once; each one's result (0, or its errno), in order.
pub fn sync_all(fds: &[i32]) -> Vec<i32> {
    match fds.len() {
        0 => return Vec::new(),
        1 => return vec![sync_one(fds[0])],
        _ => {}
    }
    let results = Arc::new(Mutex::new(vec![0; fds.len()]));
    let done = Arc::new(Done {
        left: Mutex::new(fds.len() - 1),
        cv: Condvar::new(),
    });
    for (slot, &fd) in fds.iter().enumerate().skip(1) {
        let (results, done) = (Arc::clone(&results), Arc::clone(&done));
        let job: Job = Box::new(move || {
            let code = sync_one(fd);
            results.lock().unwrap_or_else(|e| e.into_inner())[slot] = code;
            let mut left = done.left.lock().unwrap_or_else(|e| e.into_inner());
            *left -= 1;
            if *left == 0 {
                done.cv.notify_all();
            }
        });
        if let Err(job) = submit(job) {
            job();
        }
    }
    let first = sync_one(fds[0]);
    let mut left = done.left.lock().unwrap_or_else(|e| e.into_inner());
    while *left > 0 {
        left = done.cv.wait(left).unwrap_or_else(|e| e.into_inner());
    }
    drop(left);
    let mut out = results.lock().unwrap_or_else(|e| e.into_inner()).clone();
    out[0] = first;
    out
}

/// An `fdatasync` under way on the pool ([`start`]).
pub struct Started {
    result: Mutex<Option<i32>>,
    cv: Condvar,
}

impl Started {
    /// Block until the `fdatasync` has returned: 0, or its errno.
    pub fn wait(&self) -> i32 {
        let mut r = self.result.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(code) = *r {
                return code;
            }
            r = self.cv.wait(r).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The result if the `fdatasync` has returned, else None.
    pub fn poll(&self) -> Option<i32> {
        *self.result.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Start `fdatasync(fd)` on the pool and return at once. The caller must keep `fd` open
/// until [`Started::wait`] has returned.
pub fn start(fd: i32) -> Arc<Started> {
    let started = Arc::new(Started {
        result: Mutex::new(None),
        cv: Condvar::new(),
    });
    let s = Arc::clone(&started);
    let job: Job = Box::new(move || {
        let code = sync_one(fd);
        *s.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
        s.cv.notify_all();
    });
    if let Err(job) = submit(job) {
        job();
    }
    started
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn syncs_every_file_and_reports_each_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<std::fs::File> = (0..5)
            .map(|i| std::fs::File::create(dir.path().join(format!("f{i}"))).unwrap())
            .collect();
        for f in files.iter_mut() {
            f.write_all(b"abc").unwrap();
        }
        let mut fds: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
        assert_eq!(sync_all(&fds), vec![0; 5]);
        fds[2] = -1; // not a descriptor: EBADF for that one only
        let out = sync_all(&fds);
        assert_eq!(out[2], libc::EBADF);
        assert_eq!(out.iter().filter(|&&c| c == 0).count(), 4);
        assert_eq!(sync_all(&[]), Vec::<i32>::new());
        assert_eq!(sync_all(&[-1]), vec![libc::EBADF]);
    }

    #[test]
    fn a_started_sync_reports_its_result() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = std::fs::File::create(dir.path().join("f")).unwrap();
        f.write_all(b"abc").unwrap();
        let ok = start(f.as_raw_fd());
        let bad = start(-1);
        assert_eq!(ok.wait(), 0);
        assert_eq!(ok.poll(), Some(0));
        assert_eq!(bad.wait(), libc::EBADF);
        assert_eq!(bad.wait(), libc::EBADF); // waiting again gives the same answer
    }
}
