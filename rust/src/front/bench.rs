//! The load generator of `pegasus-fast bench served`, in the spirit of
//! redis-benchmark: N connections, one request in flight on each (or a fixed
//! total rate, open loop: latency counted from when a request was due, so a
//! stalled server is not hidden), speaking Pegasus's protocol to our server
//! or RESP to Redis, so both are driven by the same code. Written in tokio so
//! that it does not measure itself.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::proto::{self, Args, Outcome};
use crate::crc;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Pegasus,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchOp {
    Get,
    Set,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub addr: SocketAddr,
    pub protocol: Protocol,
    /// the Pegasus table (ignored by Redis)
    pub table: String,
    pub clients: usize,
    pub op: BenchOp,
    pub seconds: f64,
    /// measured after this long
    pub warmup: f64,
    pub value_size: usize,
    pub keyspace: u64,
    /// total requests per second over all connections, open loop; 0: as fast as answered
    pub rate: f64,
    /// tokio worker threads of the generator
    pub threads: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    /// latency percentiles in microseconds: p50, p90, p99, p99.9, max
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    /// every acknowledged request's latency in microseconds, sorted (what the percentiles are
    /// of: a caller merges phases with them)
    pub latencies: Vec<u32>,
}

pub fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| Error::InvalidArgument(format!("{host}:{port} has no address")))
}

fn hash_key(k: u64) -> Vec<u8> {
    format!("key:{k:012}").into_bytes()
}

/// What a Pegasus connection needs to address a key.
#[derive(Clone, Copy)]
struct Route {
    app_id: i32,
    partitions: u64,
}

/// Run one phase of the benchmark.
pub fn run(spec: &Spec) -> Result<Outcomes> {
    if spec.clients == 0 || spec.keyspace == 0 || spec.seconds <= spec.warmup {
        return Err(Error::InvalidArgument(
            "clients and keyspace must be positive and seconds longer than the warm-up".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async {
        let route = match spec.protocol {
            Protocol::Pegasus => Some(query_route(spec).await?),
            Protocol::Redis => None,
        };
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..spec.clients {
            let spec = spec.clone();
            tasks.push(tokio::spawn(async move {
                client_loop(&spec, route, c, start).await
            }));
        }
        let mut lat: Vec<u32> = Vec::new();
        let mut out = Outcomes::default();
        for t in tasks {
            let (l, errors) = t
                .await
                .map_err(|e| Error::InvalidArgument(format!("a bench client failed: {e}")))??;
            out.errors += errors;
            lat.extend(l);
        }
        out.seconds = spec.seconds - spec.warmup;
        out.ops = lat.len() as u64;
        summarize(&mut lat, &mut out);
        out.latencies = lat;
        Ok(out)
    })
}

/// Write every key of the keyspace once (so that reads find their records).
pub fn prefill(spec: &Spec) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async {
        let route = match spec.protocol {
            Protocol::Pegasus => Some(query_route(spec).await?),
            Protocol::Redis => None,
        };
        let mut tasks = Vec::new();
        for c in 0..spec.clients {
            let spec = spec.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::open(&spec).await?;
                let value = vec![b'x'; spec.value_size];
                let mut k = c as u64;
                while k < spec.keyspace {
                    conn.call(&spec, route, BenchOp::Set, k, &value).await?;
                    k += spec.clients as u64;
                }
                Ok::<(), Error>(())
            }));
        }
        for t in tasks {
            t.await
                .map_err(|e| Error::InvalidArgument(format!("a bench client failed: {e}")))??;
        }
        Ok(())
    })
}

fn summarize(lat: &mut [u32], out: &mut Outcomes) {
    if lat.is_empty() {
        return;
    }
    lat.sort_unstable();
    let at = |q: f64| {
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i])
    };
    out.p50 = at(0.50);
    out.p90 = at(0.90);
    out.p99 = at(0.99);
    out.p999 = at(0.999);
    out.max = f64::from(lat[lat.len() - 1]);
    out.mean = lat.iter().map(|&x| f64::from(x)).sum::<f64>() / lat.len() as f64;
}

async fn query_route(spec: &Spec) -> Result<Route> {
    let mut conn = Conn::open(spec).await?;
    let args = Args::QueryCfg(spec.table.clone(), Vec::new());
    let (error, result) = conn.pegasus(proto::OP_QUERY_CFG, 0, 0, &args).await?;
    match result {
        Outcome::QueryCfg(err, app_id, partitions, _) if error == "ERR_OK" && err == "ERR_OK" => {
            Ok(Route {
                app_id,
                partitions: partitions.max(1) as u64,
            })
        }
        _ => Err(Error::InvalidArgument(format!(
            "the server has no table {:?} ({error})",
            spec.table
        ))),
    }
}

struct Conn {
    s: BufReader<TcpStream>,
    buf: Vec<u8>,
    seqid: i32,
}

impl Conn {
    async fn open(spec: &Spec) -> Result<Conn> {
        let s = TcpStream::connect(spec.addr).await?;
        s.set_nodelay(true)?;
        Ok(Conn {
            s: BufReader::with_capacity(64 << 10, s),
            buf: Vec::with_capacity(4096),
            seqid: 0,
        })
    }

    async fn pegasus(
        &mut self,
        op: u8,
        app_id: i32,
        pidx: i32,
        args: &Args,
    ) -> Result<(String, Outcome)> {
        self.seqid = self.seqid.wrapping_add(1) & i32::MAX;
        let body = proto::encode_request(op, proto::name_of(op).unwrap_or(""), self.seqid, args);
        self.buf.clear();
        self.buf
            .extend_from_slice(&proto::encode_v0_header(body.len(), app_id, pidx));
        self.buf.extend_from_slice(&body);
        self.s.get_mut().write_all(&self.buf).await?;
        let n = self.s.read_i32().await?;
        if n < 4 || n as u64 > proto::DEFAULT_MAX_FRAME {
            return Err(Error::Protocol {
                offset: 0,
                reason: format!("reply length {n}"),
            });
        }
        self.buf.resize(n as usize - 4, 0);
        self.s.read_exact(&mut self.buf).await?;
        let (error, _, _, result) = proto::decode_reply(op, &self.buf)?;
        Ok((error, result))
    }

    /// One request; whether the answer was a success.
    async fn call(
        &mut self,
        spec: &Spec,
        route: Option<Route>,
        op: BenchOp,
        k: u64,
        value: &[u8],
    ) -> Result<bool> {
        let hk = hash_key(k);
        match route {
            Some(r) => {
                let pidx = crc::partition_index(&hk, r.partitions, b"").unwrap_or(0) as i32;
                let mut key = Vec::with_capacity(2 + hk.len());
                key.extend_from_slice(&(hk.len() as u16).to_be_bytes());
                key.extend_from_slice(&hk);
                let (pop, args) = match op {
                    BenchOp::Get => (proto::OP_GET, Args::Key(key)),
                    BenchOp::Set => (proto::OP_PUT, Args::Put(key, value.to_vec(), 0)),
                };
                let (error, result) = self.pegasus(pop, r.app_id, pidx, &args).await?;
                Ok(error == "ERR_OK"
                    && matches!(result, Outcome::Read(0 | 1, _) | Outcome::Update(0, _)))
            }
            None => self.redis(spec, op, &hk, value).await,
        }
    }

    async fn redis(&mut self, _spec: &Spec, op: BenchOp, key: &[u8], value: &[u8]) -> Result<bool> {
        self.buf.clear();
        let parts: &[&[u8]] = match op {
            BenchOp::Get => &[b"GET", key],
            BenchOp::Set => &[b"SET", key, value],
        };
        self.buf
            .extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
        for p in parts {
            self.buf
                .extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
            self.buf.extend_from_slice(p);
            self.buf.extend_from_slice(b"\r\n");
        }
        self.s.get_mut().write_all(&self.buf).await?;
        let mut line = Vec::new();
        self.s.read_until(b'\n', &mut line).await?;
        if line.len() < 3 || !line.ends_with(b"\r\n") {
            return Err(Error::Protocol {
                offset: 0,
                reason: "a RESP reply line without CRLF".into(),
            });
        }
        match line[0] {
            b'+' | b':' => Ok(true),
            b'-' => Ok(false),
            b'$' => {
                let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| Error::Protocol {
                        offset: 0,
                        reason: "a RESP bulk length that is not a number".into(),
                    })?;
                if n >= 0 {
                    self.buf.resize(n as usize + 2, 0);
                    self.s.read_exact(&mut self.buf).await?;
                }
                Ok(true)
            }
            _ => Err(Error::Protocol {
                offset: 0,
                reason: "an unexpected RESP reply".into(),
            }),
        }
    }
}

async fn client_loop(
    spec: &Spec,
    route: Option<Route>,
    c: usize,
    start: Instant,
) -> Result<(Vec<u32>, u64)> {
    let mut conn = Conn::open(spec).await?;
    let value = vec![b'x'; spec.value_size];
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((c as u64 + 1) * 0xBF58_476D_1CE4_E5B9);
    let warm = start + Duration::from_secs_f64(spec.warmup);
    let end = start + Duration::from_secs_f64(spec.seconds);
    let interval =
        (spec.rate > 0.0).then(|| Duration::from_secs_f64(spec.clients as f64 / spec.rate));
    // spread the connections' first requests over one interval
    let mut due = start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(c as f64 / spec.clients as f64)
        });
    let mut lat = Vec::with_capacity(1 << 16);
    let mut errors = 0u64;
    loop {
        let sent = match interval {
            Some(i) => {
                tokio::time::sleep_until(due.into()).await;
                let d = due;
                due += i;
                d
            }
            None => Instant::now(),
        };
        if sent >= end {
            break;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let ok = conn
            .call(spec, route, spec.op, rng % spec.keyspace, &value)
            .await?;
        if sent >= warm {
            if ok {
                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                lat.push(us);
            } else {
                errors += 1;
            }
        }
    }
    Ok((lat, errors))
}
