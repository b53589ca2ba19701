//! The served data plane's front end (DESIGN.md §11): tokio accepts
//! connections, checks the allowlist before reading a byte, reads bounded
//! frames, decodes compact requests, and queues every request that is ready,
//! across all connections, for one consumer that takes them all at once
//! ([`Front::next_batch`]): the Python glue, which hands the batch to
//! `BatchHandler.handle_batch` taking the GIL once. While it works, the
//! connections go on reading, so under load the next batch grows by itself.
//! Answers come back through [`Front::complete`], are encoded here and
//! written by each connection's writer task.
//!
//! A connection holds at most `max_inflight` requests unanswered: a reply
//! releases its slot once written, so a client that does not read its
//! replies stops being read. A stalled client holds a parked task and its
//! buffered bytes, never a thread; a body is buffered as it arrives, never
//! allocated from a header's claim.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::proto::{self, Request, Response};
use super::thrift::ProtocolError;

/// Upper bounds of the batch-size histogram's buckets (the last one is +Inf).
pub const BATCH_BUCKETS: [u64; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
/// Batches of at most this many requests are answered on the batch loop's thread when no
/// request waits for it (see ConnOut).
const INLINE_MAX: usize = 4;

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.addr.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            ip => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FrontConfig {
    pub max_frame: u64,
    pub max_inflight: usize,
    /// empty: everyone
    pub allow: Vec<Cidr>,
    /// tokio worker threads
    pub workers: usize,
}

#[derive(Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub requests: AtomicU64,
    pub batches: AtomicU64,
    pub batch_sum: AtomicU64,
    /// counts per bucket of BATCH_BUCKETS, then one for larger batches
    pub batch_hist: [AtomicU64; BATCH_BUCKETS.len() + 1],
}

impl Stats {
    fn record_batch(&self, n: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_sum.fetch_add(n as u64, Ordering::Relaxed);
        let i = BATCH_BUCKETS
            .iter()
            .position(|&b| n as u64 <= b)
            .unwrap_or(BATCH_BUCKETS.len());
        self.batch_hist[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// One connection's writing side, as a batch's requests carry it. A small batch's answers are
/// written by the batch loop's thread itself when no request waits for that thread and no
/// answer is queued before them on the connection (no hand-off to the writer task: one thread
/// wake less per round trip, what a lone client waits for);
/// what the socket does not take at once, and a big batch's answers, go to the writer task.
pub struct ConnOut {
    wire: Arc<Wire>,
    server: Vec<u8>,
    primary: i64,
}

/// The writing side shared by a connection's writer task and the threads that answer.
struct Wire {
    outbox: Mutex<Outbox>,
    wake: Notify,
}

struct Outbox {
    /// None once the connection is closed: answers go nowhere
    wr: Option<Arc<OwnedWriteHalf>>,
    /// bytes for the writer task, in order, and the slots they release once written
    buf: Vec<u8>,
    slots: Vec<OwnedSemaphorePermit>,
    /// the writer task has bytes to write (nobody else writes until it has none)
    busy: bool,
    /// no more answers will come (every ConnOut is gone): the writer ends once it has none
    done: bool,
}

impl Wire {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `data` for the writer task, or with `inline` write it now if nothing is queued
    /// before it; its slot is released once it is written.
    fn send(&self, data: &[u8], slot: OwnedSemaphorePermit, inline: bool) {
        let mut o = self.lock();
        let Some(wr) = o.wr.clone() else {
            return; // closed: the answer goes nowhere
        };
        let mut rest = data;
        if inline && !o.busy {
            while !rest.is_empty() {
                match wr.try_write(rest) {
                    Ok(0) => break,
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // WouldBlock: the writer task waits for room; other errors: it sees them
                    Err(_) => break,
                }
            }
            if rest.is_empty() {
                return; // written: the slot is released
            }
        }
        o.buf.extend_from_slice(rest);
        o.slots.push(slot);
        if !o.busy {
            o.busy = true;
            self.wake.notify_one();
        }
    }
}

impl Drop for ConnOut {
    fn drop(&mut self) {
        self.wire.lock().done = true;
        self.wire.wake.notify_one();
    }
}

/// A request waiting for the store, with what its answer needs.
pub struct Pending {
    pub req: Request,
    conn: Arc<ConnOut>,
    permit: OwnedSemaphorePermit,
}

struct Shared {
    queue: Mutex<Vec<Pending>>,
    ready: Condvar,
    /// OP_REPLICATE requests, once a consumer of their own serves them ([`Front::next_side_batch`]):
    /// a node's client writes wait in their batch for their secondaries' acknowledgements,
    /// which come through the secondaries' ports, whose own batches may be waiting for this
    /// node's; behind those batches a replication request would wait for ever (8 s, the
    /// commit's timeout, each time)
    side: Mutex<Vec<Pending>>,
    side_ready: Condvar,
    side_served: AtomicBool,
    /// a queue length the consumer lingers for (0: none)
    want: AtomicUsize,
    stopped: AtomicBool,
    stats: Stats,
    cfg: FrontConfig,
}

impl Shared {
    fn push_side(&self, p: Pending) {
        let mut q = self.side.lock().unwrap_or_else(|e| e.into_inner());
        q.push(p);
        let wake = q.len() == 1;
        drop(q);
        if wake {
            self.side_ready.notify_one();
        }
    }

    fn push(&self, p: Pending) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.push(p);
        let wake = q.len() == 1 || q.len() == self.want.load(Ordering::Relaxed);
        // woken after the lock is released: a consumer woken under it would block on it at once
        // (a second futex round trip per request)
        drop(q);
        if wake {
            self.ready.notify_one();
        }
    }
}

/// What waiting for a queue's first request found.
enum Ready<'a> {
    Stopped,
    Empty,
    Some(std::sync::MutexGuard<'a, Vec<Pending>>),
}

/// `queue` locked once it holds a request, waiting on `ready` up to `wait` for one.
fn first_ready<'a>(
    s: &Shared,
    queue: &'a Mutex<Vec<Pending>>,
    ready: &Condvar,
    wait: Duration,
) -> Ready<'a> {
    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if s.stopped.load(Ordering::Acquire) {
            return Ready::Stopped;
        }
        if !q.is_empty() {
            return Ready::Some(q);
        }
        let (guard, timeout) = ready
            .wait_timeout(q, wait)
            .unwrap_or_else(|e| e.into_inner());
        q = guard;
        if timeout.timed_out() && q.is_empty() {
            return Ready::Empty;
        }
    }
}

pub struct Front {
    shared: Arc<Shared>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    pub local_addr: SocketAddr,
}

impl Front {
    /// Listen on `host:port` (port 0: a free one) and serve until [`Front::stop`].
    pub fn start(host: IpAddr, port: u16, cfg: FrontConfig) -> io::Result<Front> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.workers.max(1))
            .thread_name("pegasus-front")
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            ready: Condvar::new(),
            side: Mutex::new(Vec::new()),
            side_ready: Condvar::new(),
            side_served: AtomicBool::new(false),
            want: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            stats: Stats::default(),
            cfg,
        });
        let listener = runtime.block_on(async {
            let socket = if host.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::new(host, port))?;
            socket.listen(1024)
        })?;
        let local_addr = listener.local_addr()?;
        let acc = shared.clone();
        runtime.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => accept(&acc, stream, peer),
                    // out of descriptors and the like: back off, keep listening
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        Ok(Front {
            shared,
            runtime: Mutex::new(Some(runtime)),
            local_addr,
        })
    }

    /// Requests waiting for the consumer now.
    pub fn queued(&self) -> usize {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Every request ready (at most `max`), waiting up to `wait` for the first;
    /// empty on timeout, None once stopped. Call it without the GIL.
    pub fn next_batch(&self, max: usize, wait: Duration) -> Option<Vec<Pending>> {
        self.next_batch_filled(max, wait, 0, Duration::ZERO)
    }

    /// [`Front::next_batch`], but once a request is ready it lingers up to `linger` for
    /// `fill` of them (group commit: a batch of writes costs its partitions' fsyncs whatever
    /// its size, so one batch of every client beats two halves).
    pub fn next_batch_filled(
        &self,
        max: usize,
        wait: Duration,
        fill: usize,
        linger: Duration,
    ) -> Option<Vec<Pending>> {
        let s = &self.shared;
        let mut q = match first_ready(s, &s.queue, &s.ready, wait) {
            Ready::Stopped => return None,
            Ready::Empty => return Some(Vec::new()),
            Ready::Some(q) => q,
        };
        let fill = fill.min(max);
        if q.len() < fill && !linger.is_zero() {
            let deadline = Instant::now() + linger;
            s.want.store(fill, Ordering::Relaxed);
            while q.len() < fill && !s.stopped.load(Ordering::Acquire) {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                q = s
                    .ready
                    .wait_timeout(q, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            s.want.store(0, Ordering::Relaxed);
        }
        let batch: Vec<Pending> = if q.len() <= max {
            std::mem::take(&mut *q)
        } else {
            q.drain(..max).collect()
        };
        drop(q);
        s.stats.record_batch(batch.len());
        Some(batch)
    }

    /// From now on OP_REPLICATE requests wait for [`Front::next_side_batch`], not in the queue
    /// of the others.
    pub fn serve_side(&self) {
        self.shared.side_served.store(true, Ordering::Release);
    }

    /// Every OP_REPLICATE request ready (at most `max`), waiting up to `wait` for the first;
    /// empty on timeout, None once stopped. Call it without the GIL.
    pub fn next_side_batch(&self, max: usize, wait: Duration) -> Option<Vec<Pending>> {
        let s = &self.shared;
        let mut q = match first_ready(s, &s.side, &s.side_ready, wait) {
            Ready::Stopped => return None,
            Ready::Empty => return Some(Vec::new()),
            Ready::Some(q) => q,
        };
        Some(if q.len() <= max {
            std::mem::take(&mut *q)
        } else {
            q.drain(..max.max(1)).collect()
        })
    }

    /// Encode the answers of a batch and hand them to their connections' writers.
    /// `responses[i]` answers `batch[i]`; a missing one is answered ERR_UNKNOWN.
    pub fn complete(&self, batch: Vec<Pending>, responses: Vec<Option<Response>>) {
        // the batch thread writes only when nobody waits for it: under load the writer tasks
        // write while it takes the next batch
        let inline = batch.len() <= INLINE_MAX && self.queued() == 0;
        let mut responses = responses.into_iter();
        for p in batch {
            let resp = responses.next().flatten().unwrap_or_else(|| Response {
                op: p.req.op,
                seqid: p.req.seqid,
                app_id: p.req.app_id,
                pidx: p.req.pidx,
                name: p.req.name.clone(),
                error: proto::ERR_UNKNOWN.to_owned(),
                result: proto::Outcome::None,
            });
            let mut out = Vec::new();
            proto::encode_response(&resp, &p.conn.server, p.conn.primary, &mut out);
            if !out.is_empty() {
                p.conn.wire.send(&out, p.permit, inline);
            }
        }
    }

    /// Close the port and every connection; safe twice. Requests not answered are dropped.
    pub fn stop(&self) {
        let s = &self.shared;
        s.stopped.store(true, Ordering::Release);
        s.ready.notify_all();
        s.side_ready.notify_all();
        let rt = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rt) = rt {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        s.queue.lock().unwrap_or_else(|e| e.into_inner()).clear();
        s.side.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let allow = &shared.cfg.allow;
    if !allow.is_empty() && !allow.iter().any(|c| c.contains(peer.ip())) {
        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        // closed without ever reading the socket
        drop(stream);
        return;
    }
    shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let shared = shared.clone();
    tokio::spawn(async move {
        if let Err(Failure::Protocol) = serve(&shared, stream).await {
            shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Why a connection ended early: bytes that break the protocol (counted), or the socket.
enum Failure {
    Protocol,
    Io,
}

impl From<ProtocolError> for Failure {
    fn from(_: ProtocolError) -> Self {
        Failure::Protocol
    }
}

async fn serve(shared: &Arc<Shared>, stream: TcpStream) -> Result<(), Failure> {
    let local = stream.local_addr().map_err(|_| Failure::Io)?;
    let primary = match local.ip() {
        IpAddr::V4(v4) => proto::rpc_address(v4, local.port()),
        IpAddr::V6(_) => 0,
    };
    let (rd, wr) = stream.into_split();
    let wire = Arc::new(Wire {
        outbox: Mutex::new(Outbox {
            wr: Some(Arc::new(wr)),
            buf: Vec::new(),
            slots: Vec::new(),
            busy: false,
            done: false,
        }),
        wake: Notify::new(),
    });
    let writer = tokio::spawn(write_replies(wire.clone()));
    let out = Arc::new(ConnOut {
        wire: wire.clone(),
        server: format!("{}:{}", local.ip(), local.port()).into_bytes(),
        primary,
    });
    let result = read_requests(shared, rd, &out).await;
    if result.is_err() {
        // what breaks the protocol closes its connection now, answers in flight included
        wire.lock().wr = None;
        writer.abort();
    }
    result
}

async fn read_requests<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    rd: R,
    out: &Arc<ConnOut>,
) -> Result<(), Failure> {
    let cfg = &shared.cfg;
    let slots = Arc::new(Semaphore::new(cfg.max_inflight));
    let mut rd = BufReader::with_capacity(64 << 10, rd);
    let mut offset: u64 = 0;
    loop {
        let mut hdr = [0u8; proto::HEADER_V0];
        let got = read_full(&mut rd, &mut hdr[..proto::PREFIX]).await?;
        if got == 0 {
            return Ok(()); // closed between frames
        }
        if got < proto::PREFIX {
            return Err(closed_inside(offset));
        }
        let hlen = proto::header_length(&hdr[..proto::PREFIX], offset)?;
        if read_full(&mut rd, &mut hdr[proto::PREFIX..hlen]).await? < hlen - proto::PREFIX {
            return Err(closed_inside(offset));
        }
        let (meta_len, body_len, mut app_id, mut pidx) =
            proto::parse_header(&hdr[..hlen], offset, cfg.max_frame)?;
        if meta_len > 0 {
            let meta = read_bounded(&mut rd, meta_len, offset).await?;
            (app_id, pidx) = proto::decode_meta(&meta, offset + hlen as u64)?;
        }
        let body = read_bounded(&mut rd, body_len, offset).await?;
        let req = proto::decode_request(&body, app_id, pidx, offset + hlen as u64 + meta_len)?;
        offset += hlen as u64 + meta_len + body_len;
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::Io)?;
        shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        let side = req.op == proto::OP_REPLICATE && shared.side_served.load(Ordering::Acquire);
        let p = Pending {
            req,
            conn: out.clone(),
            permit,
        };
        if side {
            shared.push_side(p);
        } else {
            shared.push(p);
        }
    }
}

fn closed_inside(_offset: u64) -> Failure {
    Failure::Protocol
}

/// Read until `buf` is full or the peer closes; how many bytes were read.
async fn read_full<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut [u8]) -> Result<usize, Failure> {
    let mut n = 0;
    while n < buf.len() {
        match rd.read(&mut buf[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return Err(Failure::Io),
        }
    }
    Ok(n)
}

/// `len` bytes, buffered as they arrive (a header's claim allocates nothing by itself).
async fn read_bounded<R: AsyncRead + Unpin>(
    rd: &mut R,
    len: u64,
    offset: u64,
) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::with_capacity(len.min(64 << 10) as usize);
    let got = rd
        .take(len)
        .read_to_end(&mut buf)
        .await
        .map_err(|_| Failure::Io)?;
    if (got as u64) < len {
        return Err(closed_inside(offset));
    }
    Ok(buf)
}

async fn write_replies(wire: Arc<Wire>) {
    let mut buf = Vec::new();
    let mut slots = Vec::new();
    loop {
        let wr = {
            let mut o = wire.lock();
            if o.buf.is_empty() {
                o.busy = false;
                if o.done {
                    o.wr = None;
                    return;
                }
                None
            } else if o.wr.is_none() {
                return; // closed
            } else {
                std::mem::swap(&mut o.buf, &mut buf);
                std::mem::swap(&mut o.slots, &mut slots);
                o.wr.clone()
            }
        };
        let Some(wr) = wr else {
            wire.wake.notified().await;
            continue;
        };
        if write_all(&wr, &buf).await.is_err() {
            let mut o = wire.lock();
            o.wr = None;
            o.buf.clear();
            o.slots.clear();
            return;
        }
        buf.clear();
        slots.clear(); // written: the connection may be read further
    }
}

/// Write all of `data` as the socket takes it.
async fn write_all(wr: &OwnedWriteHalf, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        wr.writable().await?;
        match wr.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Parse `"a.b.c.d/n"` (or a bare address) as a network.
pub fn parse_cidr(text: &str) -> Option<Cidr> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
        None => {
            let a = text.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    Cidr::new(addr, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn front(allow: &str) -> Front {
        let allow = if allow.is_empty() {
            vec![]
        } else {
            vec![parse_cidr(allow).unwrap()]
        };
        let cfg = FrontConfig {
            max_frame: 1 << 16,
            max_inflight: 4,
            allow,
            workers: 1,
        };
        Front::start("127.0.0.1".parse().unwrap(), 0, cfg).unwrap()
    }

    #[test]
    fn cidr() {
        let c = parse_cidr("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.1.2.3".parse().unwrap()));
        assert!(parse_cidr("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert!(parse_cidr("1.2.3.4/33").is_none());
    }

    #[test]
    fn a_request_goes_through_a_batch() {
        let f = front("");
        let mut s = std::net::TcpStream::connect(f.local_addr).unwrap();
        let args = proto::Args::Key(b"\0\x01hs".to_vec());
        let body = proto::encode_request(proto::OP_GET, "RPC_RRDB_RRDB_GET", 3, &args);
        s.write_all(&proto::encode_v0_header(body.len(), 1, 0))
            .unwrap();
        s.write_all(&body).unwrap();
        let batch = loop {
            let b = f.next_batch(100, Duration::from_millis(50)).unwrap();
            if !b.is_empty() {
                break b;
            }
        };
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].req.args, args);
        let req = batch[0].req.clone();
        let resp = Response {
            op: req.op,
            seqid: req.seqid,
            app_id: 1,
            pidx: 0,
            name: req.name,
            error: "ERR_OK".into(),
            result: proto::Outcome::Read(0, b"v".to_vec()),
        };
        f.complete(batch, vec![Some(resp)]);
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut rest = vec![0u8; i32::from_be_bytes(len) as usize - 4];
        s.read_exact(&mut rest).unwrap();
        let (err, _, seqid, out) = proto::decode_reply(proto::OP_GET, &rest).unwrap();
        assert_eq!(
            (err.as_str(), seqid, out),
            ("ERR_OK", 3, proto::Outcome::Read(0, b"v".to_vec()))
        );
        f.stop();
        assert!(f.next_batch(1, Duration::from_millis(1)).is_none());
    }

    #[test]
    fn replication_waits_apart_once_served_apart() {
        let f = front("");
        let mut s = std::net::TcpStream::connect(f.local_addr).unwrap();
        let send = |s: &mut std::net::TcpStream, op: u8, name: &str, seqid: i32| {
            let body =
                proto::encode_request(op, name, seqid, &proto::Args::Key(b"\0\x01hs".to_vec()));
            s.write_all(&proto::encode_v0_header(body.len(), 1, 0))
                .unwrap();
            s.write_all(&body).unwrap();
        };
        let take = |side: bool| loop {
            let b = if side {
                f.next_side_batch(100, Duration::from_millis(50)).unwrap()
            } else {
                f.next_batch(100, Duration::from_millis(50)).unwrap()
            };
            if !b.is_empty() {
                break b;
            }
        };
        // not served apart yet: in the one queue
        send(&mut s, proto::OP_REPLICATE, "RPC_PF_NODE_REPLICATE", 1);
        assert_eq!(take(false)[0].req.op, proto::OP_REPLICATE);
        f.serve_side();
        send(&mut s, proto::OP_GET, "RPC_RRDB_RRDB_GET", 2);
        send(&mut s, proto::OP_REPLICATE, "RPC_PF_NODE_REPLICATE", 3);
        let side = take(true);
        assert_eq!((side.len(), side[0].req.seqid), (1, 3));
        let main = take(false);
        assert_eq!((main.len(), main[0].req.seqid), (1, 2));
        assert!(f
            .next_side_batch(1, Duration::from_millis(1))
            .unwrap()
            .is_empty());
        f.stop();
        assert!(f.next_side_batch(1, Duration::from_millis(1)).is_none());
    }

    fn send_get(s: &mut std::net::TcpStream, seqid: i32) {
        let args = proto::Args::Key(b"\0\x01hs".to_vec());
        let body = proto::encode_request(proto::OP_GET, "RPC_RRDB_RRDB_GET", seqid, &args);
        s.write_all(&proto::encode_v0_header(body.len(), 1, 0))
            .unwrap();
        s.write_all(&body).unwrap();
    }

    #[test]
    fn a_filled_batch_lingers_for_its_requests_and_no_longer() {
        let f = front("");
        let mut a = std::net::TcpStream::connect(f.local_addr).unwrap();
        let mut b = std::net::TcpStream::connect(f.local_addr).unwrap();
        send_get(&mut a, 1);
        // one request ready, two wanted: the second comes while it lingers
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            send_get(&mut b, 2);
            b
        });
        let long = Duration::from_secs(20);
        let t = Instant::now();
        let batch = f.next_batch_filled(8, long, 2, long).unwrap();
        assert_eq!(batch.len(), 2);
        assert!(t.elapsed() < Duration::from_secs(10));
        let _b = sender.join().unwrap();
        // nobody else comes: the linger ends at its deadline with what is there
        send_get(&mut a, 3);
        let t = Instant::now();
        let batch = f
            .next_batch_filled(8, long, 2, Duration::from_millis(50))
            .unwrap();
        assert_eq!(batch.len(), 1);
        assert!(t.elapsed() >= Duration::from_millis(50));
        f.stop();
    }

    #[test]
    fn answers_larger_than_the_socket_takes_keep_their_order() {
        // each batch of one is answered on the calling thread; the socket, not read yet,
        // takes only part of them: the rest goes to the writer task, and later answers wait
        // behind it
        let f = front("");
        let mut s = std::net::TcpStream::connect(f.local_addr).unwrap();
        for seqid in 1..=4 {
            send_get(&mut s, seqid);
        }
        let mut got = 0;
        while got < 4 {
            let batch = f.next_batch(1, Duration::from_millis(50)).unwrap();
            for p in &batch {
                assert_eq!(p.req.seqid, got + 1);
            }
            let responses = batch
                .iter()
                .map(|p| {
                    Some(Response {
                        op: p.req.op,
                        seqid: p.req.seqid,
                        app_id: 1,
                        pidx: 0,
                        name: p.req.name.clone(),
                        error: "ERR_OK".into(),
                        result: proto::Outcome::Read(0, vec![p.req.seqid as u8; 3 << 20]),
                    })
                })
                .collect();
            got += batch.len() as i32;
            f.complete(batch, responses);
        }
        for seqid in 1..=4 {
            let mut len = [0u8; 4];
            s.read_exact(&mut len).unwrap();
            let mut rest = vec![0u8; i32::from_be_bytes(len) as usize - 4];
            s.read_exact(&mut rest).unwrap();
            let (err, _, got, out) = proto::decode_reply(proto::OP_GET, &rest).unwrap();
            assert_eq!((err.as_str(), got), ("ERR_OK", seqid));
            assert_eq!(out, proto::Outcome::Read(0, vec![seqid as u8; 3 << 20]));
        }
        f.stop();
    }

    #[test]
    fn refused_peers_are_counted_and_never_read() {
        let f = front("10.0.0.0/8");
        let mut s = std::net::TcpStream::connect(f.local_addr).unwrap();
        let _ = s.write_all(b"THFT");
        let mut b = [0u8; 1];
        assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
        assert_eq!(f.stats().refused.load(Ordering::Relaxed), 1);
        assert_eq!(f.stats().requests.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn garbage_closes_and_is_counted() {
        let f = front("");
        let mut s = std::net::TcpStream::connect(f.local_addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut b = [0u8; 1];
        assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while f.stats().protocol_errors.load(Ordering::Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
