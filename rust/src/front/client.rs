//! A Pegasus-protocol client for `pf.connect`'s data calls: blocking sockets
//! from a small pool, so every calling thread has its own connection and the
//! glue waits with the GIL released. The twin of `client/native.py`'s socket
//! client: the same request bytes, the same compact results.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::proto::{self, Args, Outcome};
use crate::error::{Error, Result};

/// The largest reply accepted (a largest value and its keys, with room).
pub const MAX_REPLY: usize = proto::DEFAULT_MAX_FRAME as usize;
/// Idle connections kept for reuse.
const POOL: usize = 64;
/// A reply's first read: a get's answer with a value of a few KiB comes in one.
const FIRST_READ: usize = 8 << 10;

pub struct Client {
    addr: SocketAddr,
    timeout: Option<Duration>,
    pool: Mutex<Vec<TcpStream>>,
    seqid: AtomicI32,
}

impl Client {
    pub fn new(host: &str, port: u16, timeout: Option<Duration>) -> Result<Client> {
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| Error::InvalidArgument(format!("{host}:{port} has no address")))?;
        Ok(Client {
            addr,
            timeout,
            pool: Mutex::new(Vec::new()),
            seqid: AtomicI32::new(1),
        })
    }

    fn connection(&self) -> Result<TcpStream> {
        if let Some(s) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(s);
        }
        let s = match self.timeout {
            Some(t) => TcpStream::connect_timeout(&self.addr, t)?,
            None => TcpStream::connect(self.addr)?,
        };
        s.set_nodelay(true)?;
        s.set_read_timeout(self.timeout)?;
        s.set_write_timeout(self.timeout)?;
        Ok(s)
    }

    /// One call: `(rDSN error, result)`; the result is `Outcome::None` unless ERR_OK.
    pub fn call(&self, op: u8, app_id: i32, pidx: i32, args: &Args) -> Result<(String, Outcome)> {
        let name = proto::name_of(op)
            .ok_or_else(|| Error::InvalidArgument(format!("no RPC has operation {op}")))?;
        let seqid = self.seqid.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let body = proto::encode_request(op, name, seqid, args);
        let mut frame = Vec::with_capacity(proto::HEADER_V0 + body.len());
        frame.extend_from_slice(&proto::encode_v0_header(body.len(), app_id, pidx));
        frame.extend_from_slice(&body);
        let mut s = self.connection()?;
        let data = exchange(&mut s, &frame).map_err(|e| match e {
            Error::Io(e) if is_timeout(&e) => Error::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no reply from {} in time", self.addr),
            )),
            e => e,
        })?;
        let (error, _name, got, result) = proto::decode_reply(op, &data)?;
        if got != seqid {
            return Err(Error::Protocol {
                offset: 0,
                reason: format!("reply to sequence id {got}, not {seqid}"),
            });
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL {
            pool.push(s);
        }
        Ok((error, result))
    }

    /// Drop the idle connections.
    pub fn close(&self) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Send a frame, read one reply frame's content (after its length): a small reply comes in
/// one read, its length and content together.
fn exchange(s: &mut TcpStream, frame: &[u8]) -> Result<Vec<u8>> {
    s.write_all(frame)?;
    let mut buf = vec![0u8; FIRST_READ];
    let mut have = 0;
    while have < 4 {
        have += read_some(s, &mut buf[have..])?;
    }
    let n = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if n < 4 || n as usize > MAX_REPLY {
        return Err(Error::Protocol {
            offset: 0,
            reason: format!("reply length {n}"),
        });
    }
    let n = n as usize;
    if have > n {
        // one call at a time on a connection: nothing may follow its reply
        return Err(Error::Protocol {
            offset: n as u64,
            reason: format!("{} bytes after the reply", have - n),
        });
    }
    buf.resize(n, 0);
    if have < n {
        s.read_exact(&mut buf[have..])?;
    }
    buf.drain(..4);
    Ok(buf)
}

/// What one read gives (at least a byte: the peer's close is an error here).
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> Result<usize> {
    loop {
        match s.read(buf) {
            Ok(0) => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection before its reply",
                )))
            }
            Ok(k) => return Ok(k),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl From<super::thrift::ProtocolError> for Error {
    fn from(e: super::thrift::ProtocolError) -> Self {
        Error::Protocol {
            offset: e.offset,
            reason: e.reason,
        }
    }
}

/// A socket timeout: Linux says EAGAIN (WouldBlock), others TimedOut.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
