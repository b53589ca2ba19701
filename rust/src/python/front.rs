//! Glue of the served data plane (core: `crate::front`): the front end whose
//! batches Python answers with the GIL taken once per batch, the client, and
//! the load generator. Compact requests and responses cross as the very
//! tuples `net/pegasus/requests.py` and `replies.py` use.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple, PyType};

use super::convert::get_bytes;
use super::InvalidArgumentError;
use crate::front::bench;
use crate::front::client::Client;
use crate::front::proto::{
    self, Args, CheckAndMutate, CheckAndSet, GetScanner, MultiGet, Outcome, Request, Response,
};
use crate::front::server::{self, Front, FrontConfig, Pending};

static PROTOCOL_ERROR: GILOnceCell<Py<PyType>> = GILOnceCell::new();
/// How long the batch loop waits for requests before it looks for signals and stop.
const POLL: Duration = Duration::from_millis(100);

fn bytes(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = obj.downcast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Ok(get_bytes(obj, "bytes")?.to_vec())
}

fn bytes_list(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u8>>> {
    obj.try_iter()?.map(|x| bytes(&x?)).collect()
}

fn pairs(obj: &Bound<'_, PyAny>) -> PyResult<Vec<(Vec<u8>, Vec<u8>)>> {
    obj.try_iter()?
        .map(|x| {
            let x = x?;
            Ok((bytes(&x.get_item(0)?)?, bytes(&x.get_item(1)?)?))
        })
        .collect()
}

fn pairs_to_py<'py>(py: Python<'py>, kvs: &[(Vec<u8>, Vec<u8>)]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        kvs.iter()
            .map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v))),
    )
}

fn bytes_list_to_py<'py>(py: Python<'py>, items: &[Vec<u8>]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, items.iter().map(|b| PyBytes::new(py, b)))
}

/// A request's args as requests.py makes them.
fn args_to_py<'py>(py: Python<'py>, args: &Args) -> PyResult<Bound<'py, PyTuple>> {
    let b = |x: &[u8]| PyBytes::new(py, x).into_any();
    Ok(match args {
        Args::Empty => PyTuple::empty(py),
        Args::QueryCfg(name, idx) => (name, PyList::new(py, idx)?).into_pyobject(py)?,
        Args::Put(k, v, e) => (b(k), b(v), *e).into_pyobject(py)?,
        Args::MultiPut(hk, kvs, e) => (b(hk), pairs_to_py(py, kvs)?, *e).into_pyobject(py)?,
        Args::Key(k) => (b(k),).into_pyobject(py)?,
        Args::MultiRemove(hk, sks) => (b(hk), bytes_list_to_py(py, sks)?).into_pyobject(py)?,
        Args::MultiGet(m) => PyTuple::new(
            py,
            [
                b(&m.hash_key),
                bytes_list_to_py(py, &m.sort_keys)?.into_any(),
                m.max_kv_count.into_pyobject(py)?.into_any(),
                m.max_kv_size.into_pyobject(py)?.into_any(),
                pyo3::types::PyBool::new(py, m.no_value)
                    .to_owned()
                    .into_any(),
                b(&m.start_sort_key),
                b(&m.stop_sort_key),
                pyo3::types::PyBool::new(py, m.start_inclusive)
                    .to_owned()
                    .into_any(),
                pyo3::types::PyBool::new(py, m.stop_inclusive)
                    .to_owned()
                    .into_any(),
                m.filter_type.into_pyobject(py)?.into_any(),
                b(&m.filter_pattern),
                pyo3::types::PyBool::new(py, m.reverse)
                    .to_owned()
                    .into_any(),
            ],
        )?,
        Args::Incr(k, inc, e) => (b(k), *inc, *e).into_pyobject(py)?,
        Args::CheckAndSet(c) => PyTuple::new(
            py,
            [
                b(&c.hash_key),
                b(&c.check_sort_key),
                c.check_type.into_pyobject(py)?.into_any(),
                b(&c.check_operand),
                py_bool(py, c.set_diff_sort_key),
                b(&c.set_sort_key),
                b(&c.set_value),
                c.expire_ts.into_pyobject(py)?.into_any(),
                py_bool(py, c.return_check_value),
            ],
        )?,
        Args::CheckAndMutate(c) => {
            let muts = PyList::new(
                py,
                c.mutations
                    .iter()
                    .map(|(op, sk, v, e)| (*op, PyBytes::new(py, sk), PyBytes::new(py, v), *e)),
            )?;
            PyTuple::new(
                py,
                [
                    b(&c.hash_key),
                    b(&c.check_sort_key),
                    c.check_type.into_pyobject(py)?.into_any(),
                    b(&c.check_operand),
                    muts.into_any(),
                    py_bool(py, c.return_check_value),
                ],
            )?
        }
        Args::BatchGet(keys) => (pairs_to_py(py, keys)?,).into_pyobject(py)?,
        Args::GetScanner(g) => PyTuple::new(
            py,
            [
                b(&g.start_key),
                b(&g.stop_key),
                py_bool(py, g.start_inclusive),
                py_bool(py, g.stop_inclusive),
                g.batch_size.into_pyobject(py)?.into_any(),
                py_bool(py, g.no_value),
                g.hash_key_filter_type.into_pyobject(py)?.into_any(),
                b(&g.hash_key_filter_pattern),
                g.sort_key_filter_type.into_pyobject(py)?.into_any(),
                b(&g.sort_key_filter_pattern),
            ],
        )?,
        Args::ContextId(id) => (*id,).into_pyobject(py)?,
        Args::Bad(e) => {
            let cls = PROTOCOL_ERROR.import(py, "pegasus_fast.errors", "PegasusProtocolError")?;
            (cls.call1((e.offset, e.reason.as_str()))?,).into_pyobject(py)?
        }
    })
}

fn py_bool(py: Python<'_>, v: bool) -> Bound<'_, PyAny> {
    pyo3::types::PyBool::new(py, v).to_owned().into_any()
}

/// Args of a compact request (the client's side).
fn args_from_py(op: u8, a: &Bound<'_, PyAny>) -> PyResult<Args> {
    let item = |i: usize| a.get_item(i);
    Ok(match op {
        proto::OP_QUERY_CFG => Args::QueryCfg(item(0)?.extract()?, item(1)?.extract()?),
        proto::OP_PUT => Args::Put(bytes(&item(0)?)?, bytes(&item(1)?)?, item(2)?.extract()?),
        proto::OP_MULTI_PUT => {
            Args::MultiPut(bytes(&item(0)?)?, pairs(&item(1)?)?, item(2)?.extract()?)
        }
        proto::OP_REMOVE
        | proto::OP_GET
        | proto::OP_SORTKEY_COUNT
        | proto::OP_TTL
        | proto::OP_REPLICATE
        | proto::OP_DUP_APPLY => Args::Key(bytes(&item(0)?)?),
        proto::OP_MULTI_REMOVE => Args::MultiRemove(bytes(&item(0)?)?, bytes_list(&item(1)?)?),
        proto::OP_MULTI_GET => Args::MultiGet(Box::new(MultiGet {
            hash_key: bytes(&item(0)?)?,
            sort_keys: bytes_list(&item(1)?)?,
            max_kv_count: item(2)?.extract()?,
            max_kv_size: item(3)?.extract()?,
            no_value: item(4)?.extract()?,
            start_sort_key: bytes(&item(5)?)?,
            stop_sort_key: bytes(&item(6)?)?,
            start_inclusive: item(7)?.extract()?,
            stop_inclusive: item(8)?.extract()?,
            filter_type: item(9)?.extract()?,
            filter_pattern: bytes(&item(10)?)?,
            reverse: item(11)?.extract()?,
        })),
        proto::OP_INCR => Args::Incr(bytes(&item(0)?)?, item(1)?.extract()?, item(2)?.extract()?),
        proto::OP_CHECK_AND_SET => Args::CheckAndSet(Box::new(CheckAndSet {
            hash_key: bytes(&item(0)?)?,
            check_sort_key: bytes(&item(1)?)?,
            check_type: item(2)?.extract()?,
            check_operand: bytes(&item(3)?)?,
            set_diff_sort_key: item(4)?.extract()?,
            set_sort_key: bytes(&item(5)?)?,
            set_value: bytes(&item(6)?)?,
            expire_ts: item(7)?.extract()?,
            return_check_value: item(8)?.extract()?,
        })),
        proto::OP_CHECK_AND_MUTATE => Args::CheckAndMutate(Box::new(CheckAndMutate {
            hash_key: bytes(&item(0)?)?,
            check_sort_key: bytes(&item(1)?)?,
            check_type: item(2)?.extract()?,
            check_operand: bytes(&item(3)?)?,
            mutations: item(4)?
                .try_iter()?
                .map(|m| {
                    let m = m?;
                    Ok((
                        m.get_item(0)?.extract()?,
                        bytes(&m.get_item(1)?)?,
                        bytes(&m.get_item(2)?)?,
                        m.get_item(3)?.extract()?,
                    ))
                })
                .collect::<PyResult<_>>()?,
            return_check_value: item(5)?.extract()?,
        })),
        proto::OP_BATCH_GET => Args::BatchGet(pairs(&item(0)?)?),
        proto::OP_GET_SCANNER => Args::GetScanner(Box::new(GetScanner {
            start_key: bytes(&item(0)?)?,
            stop_key: bytes(&item(1)?)?,
            start_inclusive: item(2)?.extract()?,
            stop_inclusive: item(3)?.extract()?,
            batch_size: item(4)?.extract()?,
            no_value: item(5)?.extract()?,
            hash_key_filter_type: item(6)?.extract()?,
            hash_key_filter_pattern: bytes(&item(7)?)?,
            sort_key_filter_type: item(8)?.extract()?,
            sort_key_filter_pattern: bytes(&item(9)?)?,
        })),
        proto::OP_SCAN | proto::OP_CLEAR_SCANNER => Args::ContextId(item(0)?.extract()?),
        _ => Args::Empty,
    })
}

fn request_to_py<'py>(py: Python<'py>, req: &Request) -> PyResult<Bound<'py, PyTuple>> {
    (
        req.op,
        req.seqid,
        req.app_id,
        req.pidx,
        PyString::new(py, &req.name),
        args_to_py(py, &req.args)?,
    )
        .into_pyobject(py)
}

/// A response's result as replies.py takes it.
fn outcome_from_py(op: u8, r: &Bound<'_, PyAny>) -> PyResult<Outcome> {
    let item = |i: usize| r.get_item(i);
    Ok(match op {
        proto::OP_QUERY_CFG => {
            // (pidx, ballot, last committed) or, on a multi-node cluster's node, with its
            // owner's rpc_address as a fourth item (None: the address the client reached)
            let mut parts = Vec::new();
            for p in item(3)?.try_iter()? {
                let p = p?;
                let own: Option<i64> = if p.len()? > 3 {
                    p.get_item(3)?.extract()?
                } else {
                    None
                };
                parts.push((
                    p.get_item(0)?.extract()?,
                    p.get_item(1)?.extract()?,
                    p.get_item(2)?.extract()?,
                    own,
                ));
            }
            Outcome::QueryCfg(
                item(0)?.extract()?,
                item(1)?.extract()?,
                item(2)?.extract()?,
                parts,
            )
        }
        proto::OP_PUT | proto::OP_MULTI_PUT | proto::OP_REMOVE => {
            Outcome::Update(item(0)?.extract()?, item(1)?.extract()?)
        }
        proto::OP_MULTI_REMOVE => Outcome::MultiRemove(
            item(0)?.extract()?,
            item(1)?.extract()?,
            item(2)?.extract()?,
        ),
        proto::OP_GET | proto::OP_REPLICATE | proto::OP_DUP_APPLY => {
            Outcome::Read(item(0)?.extract()?, bytes(&item(1)?)?)
        }
        proto::OP_MULTI_GET => Outcome::MultiGet(item(0)?.extract()?, pairs(&item(1)?)?),
        proto::OP_SORTKEY_COUNT => Outcome::Count(item(0)?.extract()?, item(1)?.extract()?),
        proto::OP_TTL => Outcome::Ttl(item(0)?.extract()?, item(1)?.extract()?),
        proto::OP_INCR => Outcome::Incr(
            item(0)?.extract()?,
            item(1)?.extract()?,
            item(2)?.extract()?,
        ),
        proto::OP_CHECK_AND_SET | proto::OP_CHECK_AND_MUTATE => Outcome::CheckAnd(
            item(0)?.extract()?,
            item(1)?.extract()?,
            item(2)?.extract()?,
            bytes(&item(3)?)?,
            item(4)?.extract()?,
        ),
        proto::OP_BATCH_GET => Outcome::BatchGet(
            item(0)?.extract()?,
            item(1)?
                .try_iter()?
                .map(|d| {
                    let d = d?;
                    Ok((
                        bytes(&d.get_item(0)?)?,
                        bytes(&d.get_item(1)?)?,
                        bytes(&d.get_item(2)?)?,
                    ))
                })
                .collect::<PyResult<_>>()?,
        ),
        proto::OP_GET_SCANNER | proto::OP_SCAN => {
            Outcome::Scan(item(0)?.extract()?, pairs(&item(1)?)?, item(2)?.extract()?)
        }
        _ => Outcome::None,
    })
}

fn outcome_to_py<'py>(py: Python<'py>, o: &Outcome) -> PyResult<Bound<'py, PyAny>> {
    let b = |x: &[u8]| PyBytes::new(py, x).into_any();
    Ok(match o {
        Outcome::None => py.None().into_bound(py),
        Outcome::QueryCfg(err, app, n, parts) => {
            // replies.py's shape: (pidx, ballot, last committed)
            let parts = parts.iter().map(|(p, b, l, _)| (*p, *b, *l));
            (err, *app, *n, PyList::new(py, parts)?)
                .into_pyobject(py)?
                .into_any()
        }
        Outcome::Update(s, d) => (*s, *d).into_pyobject(py)?.into_any(),
        Outcome::MultiRemove(s, c, d) => (*s, *c, *d).into_pyobject(py)?.into_any(),
        Outcome::Read(s, v) => (*s, b(v)).into_pyobject(py)?.into_any(),
        Outcome::MultiGet(s, kvs) => (*s, pairs_to_py(py, kvs)?).into_pyobject(py)?.into_any(),
        Outcome::Count(s, c) => (*s, *c).into_pyobject(py)?.into_any(),
        Outcome::Ttl(s, t) => (*s, *t).into_pyobject(py)?.into_any(),
        Outcome::Incr(s, n, d) => (*s, *n, *d).into_pyobject(py)?.into_any(),
        Outcome::CheckAnd(s, returned, exists, v, d) => (*s, *returned, *exists, b(v), *d)
            .into_pyobject(py)?
            .into_any(),
        Outcome::BatchGet(s, data) => {
            let data = PyList::new(
                py,
                data.iter().map(|(hk, sk, v)| {
                    (
                        PyBytes::new(py, hk),
                        PyBytes::new(py, sk),
                        PyBytes::new(py, v),
                    )
                }),
            )?;
            (*s, data).into_pyobject(py)?.into_any()
        }
        Outcome::Scan(s, kvs, id) => (*s, pairs_to_py(py, kvs)?, *id)
            .into_pyobject(py)?
            .into_any(),
    })
}

fn response_from_py(r: &Bound<'_, PyAny>) -> PyResult<Response> {
    let op: u8 = r.get_item(0)?.extract()?;
    let error: String = r.get_item(5)?.extract()?;
    let result = if error == proto::ERR_OK {
        outcome_from_py(op, &r.get_item(6)?)?
    } else {
        Outcome::None
    };
    Ok(Response {
        op,
        seqid: r.get_item(1)?.extract()?,
        app_id: r.get_item(2)?.extract()?,
        pidx: r.get_item(3)?.extract()?,
        name: r.get_item(4)?.extract()?,
        error,
        result,
    })
}

/// True once a begun batch's `finish()` would not wait (a broken one: finish answers it).
fn is_ready(pending: &Bound<'_, PyAny>) -> bool {
    pending
        .call_method0(pyo3::intern!(pending.py(), "ready"))
        .and_then(|r| r.extract::<bool>())
        .unwrap_or(true)
}

/// True if a begun batch logged writes (its answers wait for fsyncs).
fn has_writes(pending: &Bound<'_, PyAny>) -> bool {
    pending
        .getattr(pyo3::intern!(pending.py(), "has_writes"))
        .and_then(|r| r.extract::<bool>())
        .unwrap_or(false)
}

/// Wait for a begun batch's writes to be durable (`finish()`, which releases the GIL while it
/// waits) and send its answers; a failure answers the batch ERR_UNKNOWN.
fn finish(py: Python<'_>, front: &Arc<Front>, batch: Vec<Pending>, pending: &Bound<'_, PyAny>) {
    let responses = responses_of(py, pending.call_method0(pyo3::intern!(py, "finish")));
    py.allow_threads(|| front.complete(batch, responses));
}

/// A batch's requests as the handler takes them.
fn requests_to_py<'py>(py: Python<'py>, batch: &[Pending]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        batch
            .iter()
            .map(|p| request_to_py(py, &p.req))
            .collect::<PyResult<Vec<_>>>()?,
    )
}

/// The answers a handler returned (a failure: none, so the batch is answered ERR_UNKNOWN).
fn responses_of(py: Python<'_>, got: PyResult<Bound<'_, PyAny>>) -> Vec<Option<Response>> {
    match got {
        Ok(out) => match out.try_iter() {
            Ok(it) => it
                .map(|r| r.and_then(|r| response_from_py(&r)).ok())
                .collect(),
            Err(_) => Vec::new(),
        },
        Err(e) => {
            e.print(py);
            Vec::new()
        }
    }
}

/// The Rust front end: `serve(handler)` runs the batch loop on the calling thread.
#[pyclass(module = "pegasus_fast._rust", name = "PegasusFrontCore", frozen)]
pub struct PyFront {
    front: Arc<Front>,
}

#[pymethods]
impl PyFront {
    #[new]
    #[pyo3(signature = (host, port, allow, max_frame, max_inflight, workers))]
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        allow: Vec<String>,
        max_frame: u64,
        max_inflight: usize,
        workers: usize,
    ) -> PyResult<Self> {
        let ip: IpAddr = host
            .parse()
            .map_err(|_| InvalidArgumentError::new_err(format!("{host:?} is not an IP address")))?;
        let allow = allow
            .iter()
            .map(|c| {
                server::parse_cidr(c.trim())
                    .ok_or_else(|| InvalidArgumentError::new_err(format!("{c:?} is not a CIDR")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        if max_inflight == 0 {
            return Err(InvalidArgumentError::new_err(
                "max_inflight must be positive",
            ));
        }
        let cfg = FrontConfig {
            max_frame,
            max_inflight,
            allow,
            workers,
        };
        let front = py.allow_threads(|| Front::start(ip, port, cfg))?;
        Ok(PyFront {
            front: Arc::new(front),
        })
    }

    #[getter]
    fn port(&self) -> u16 {
        self.front.local_addr.port()
    }

    /// Hand every batch to `handler.begin_batch(requests)` until `stop()`, pipelined: while
    /// one batch's WAL fsyncs run, the next is logged, applied and read. Batches are answered
    /// in the order they began, each by its `finish()` (its writes durable) and only after
    /// every earlier batch's: a read that saw an earlier batch's write waits for that write
    /// to be durable, and a connection's replies keep their order. The GIL is released while
    /// waiting and while answers are encoded and sent; a stop answers what was begun first.
    ///
    /// `depth`: batches begun and not yet answered at most (1: each batch is answered before
    /// the next is taken); `poll_us`: how long the loop waits for requests while batches await
    /// their fsyncs before it looks whether the oldest is durable.
    ///
    /// `linger_us`: after a batch with writes, how long the loop lingers for as many requests
    /// as that batch and the queue held (0: it takes what is ready at once).
    #[pyo3(signature = (handler, max_batch, depth=1, poll_us=100, linger_us=0))]
    fn serve(
        &self,
        py: Python<'_>,
        handler: &Bound<'_, PyAny>,
        max_batch: usize,
        depth: usize,
        poll_us: u64,
        linger_us: u64,
    ) -> PyResult<()> {
        let linger = Duration::from_micros(linger_us);
        let mut fill = 0usize;
        let mut writes: Option<usize>;
        let depth = depth.max(1);
        let pipe_poll = Duration::from_micros(poll_us.max(1));
        let begin = handler.getattr(pyo3::intern!(py, "begin_batch"))?;
        let front = self.front.clone();
        let mut inflight: VecDeque<(Vec<Pending>, Bound<'_, PyAny>)> = VecDeque::new();
        loop {
            let wait = if inflight.is_empty() { POLL } else { pipe_poll };
            let batch =
                py.allow_threads(|| front.next_batch_filled(max_batch.max(1), wait, fill, linger));
            let Some(batch) = batch else {
                while let Some((b, pending)) = inflight.pop_front() {
                    finish(py, &front, b, &pending);
                }
                return Ok(());
            };
            if batch.is_empty() {
                if inflight.is_empty() {
                    py.check_signals()?;
                }
                // answer the oldest batches whose fsyncs have ended
                while let Some((_, pending)) = inflight.front() {
                    if !is_ready(pending) {
                        break;
                    }
                    let (b, pending) = inflight.pop_front().expect("front exists");
                    finish(py, &front, b, &pending);
                }
                continue;
            }
            let reqs = requests_to_py(py, &batch)?;
            match begin.call1((reqs,)) {
                Ok(pending) => {
                    // its clients and those queued now (not yet answered: none of them can be
                    // among the queued) are the clients to come back; counted before any answer
                    writes = has_writes(&pending).then(|| batch.len() + front.queued());
                    inflight.push_back((batch, pending))
                }
                Err(e) => {
                    // answered ERR_UNKNOWN after the batches begun before it; the failure is
                    // the handler's to log
                    e.print(py);
                    while let Some((b, pending)) = inflight.pop_front() {
                        finish(py, &front, b, &pending);
                    }
                    py.allow_threads(|| front.complete(batch, Vec::new()));
                    continue;
                }
            }
            // answer what is durable; at `depth` batches, wait for the oldest
            while let Some((_, pending)) = inflight.front() {
                if inflight.len() < depth && !is_ready(pending) {
                    break;
                }
                let (b, pending) = inflight.pop_front().expect("front exists");
                finish(py, &front, b, &pending);
            }
            // the clients of a batch with writes come back together: linger for them
            fill = writes.unwrap_or(0);
        }
    }

    /// Hand every OP_REPLICATE request to `handler.side_batch(requests)` (its answers, in
    /// order) until `stop()`, apart from `serve`'s batches: a node's client writes wait in
    /// their batch for their secondaries, whose acknowledgements come through the
    /// secondaries' own ports, whose batches may be waiting for this node's in turn. Run it
    /// on a thread of its own; from its start those requests wait for it alone.
    #[pyo3(signature = (handler, max_batch))]
    fn serve_side(
        &self,
        py: Python<'_>,
        handler: &Bound<'_, PyAny>,
        max_batch: usize,
    ) -> PyResult<()> {
        let side = handler.getattr(pyo3::intern!(py, "side_batch"))?;
        let front = self.front.clone();
        front.serve_side();
        loop {
            let batch = py.allow_threads(|| front.next_side_batch(max_batch.max(1), POLL));
            let Some(batch) = batch else {
                return Ok(());
            };
            if batch.is_empty() {
                continue;
            }
            // a failure answers the batch ERR_UNKNOWN and the loop goes on: these requests wait
            // for it alone, so it must never end before stop()
            let responses = responses_of(
                py,
                requests_to_py(py, &batch).and_then(|reqs| side.call1((reqs,))),
            );
            py.allow_threads(|| front.complete(batch, responses));
        }
    }

    /// Close the port and every connection; `serve` returns. Safe twice.
    fn stop(&self, py: Python<'_>) {
        let front = self.front.clone();
        py.allow_threads(|| front.stop());
    }

    /// Counters: accepted, refused, protocol_errors, requests, batches, batch_requests.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.front.stats();
        let d = PyDict::new(py);
        d.set_item("connections_accepted", s.accepted.load(Relaxed))?;
        d.set_item("connections_refused", s.refused.load(Relaxed))?;
        d.set_item("protocol_errors", s.protocol_errors.load(Relaxed))?;
        d.set_item("requests", s.requests.load(Relaxed))?;
        d.set_item("batches", s.batches.load(Relaxed))?;
        d.set_item("batch_requests", s.batch_sum.load(Relaxed))?;
        Ok(d)
    }

    /// The batch-size histogram: `[(upper bound, count), ...]`, the last bound None (+Inf).
    fn batch_histogram(&self) -> Vec<(Option<u64>, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.front.stats();
        s.batch_hist
            .iter()
            .enumerate()
            .map(|(i, c)| (server::BATCH_BUCKETS.get(i).copied(), c.load(Relaxed)))
            .collect()
    }

    /// The compact request of one frame's body (what the front end hands Python).
    #[staticmethod]
    #[pyo3(signature = (body, app_id, pidx, base=0))]
    fn decode_request<'py>(
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
        app_id: i32,
        pidx: i32,
        base: u64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let body = get_bytes(body, "body")?;
        let req = proto::decode_request(&body, app_id, pidx, base).map_err(crate::Error::from)?;
        request_to_py(py, &req)
    }

    /// One reply frame of a compact response (None for a oneway RPC), as the front end writes it.
    #[staticmethod]
    fn encode_response<'py>(
        py: Python<'py>,
        resp: &Bound<'py, PyAny>,
        server: &Bound<'py, PyAny>,
        primary: i64,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let resp = response_from_py(resp)?;
        let server = get_bytes(server, "server")?;
        let mut out = Vec::new();
        proto::encode_response(&resp, &server, primary, &mut out);
        Ok((!out.is_empty()).then(|| PyBytes::new(py, &out)))
    }
}

/// The client of `pf.connect`'s data calls; `call` waits with the GIL released.
#[pyclass(module = "pegasus_fast._rust", name = "PegasusClientCore", frozen)]
pub struct PyClient {
    client: Client,
}

#[pymethods]
impl PyClient {
    #[new]
    #[pyo3(signature = (host, port, timeout=None))]
    fn new(py: Python<'_>, host: &str, port: u16, timeout: Option<f64>) -> PyResult<Self> {
        let timeout = match timeout {
            Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
            Some(_) => return Err(InvalidArgumentError::new_err("timeout must be positive")),
            None => None,
        };
        let client = py.allow_threads(|| Client::new(host, port, timeout))?;
        Ok(PyClient { client })
    }

    /// One call of operation `op` with the compact args requests.py would decode;
    /// `(rDSN error, result)`, the result shaped as the handler's (None unless ERR_OK).
    fn call<'py>(
        &self,
        py: Python<'py>,
        op: u8,
        app_id: i32,
        pidx: i32,
        args: &Bound<'py, PyAny>,
    ) -> PyResult<(String, Bound<'py, PyAny>)> {
        if proto::name_of(op).is_none() {
            return Err(PyTypeError::new_err(format!("no RPC has operation {op}")));
        }
        let args = args_from_py(op, args)?;
        let (error, outcome) = py.allow_threads(|| self.client.call(op, app_id, pidx, &args))?;
        Ok((error, outcome_to_py(py, &outcome)?))
    }

    /// Drop the idle connections.
    fn close(&self) {
        self.client.close();
    }
}

/// One phase of the load generator (core: `front::bench`), with the GIL released:
/// `{"ops", "errors", "seconds", "ops_per_sec", "p50_us", ...}`; with `samples`, also
/// `"latencies_us"`, every request's latency sorted (to merge phases).
#[pyfunction]
#[pyo3(signature = (host, port, op, *, protocol="pegasus", table="bench", clients=32, seconds=5.0,
    warmup=1.0, value_size=100, keyspace=10000, rate=0.0, threads=1, prefill=false, samples=false))]
#[allow(clippy::too_many_arguments)]
pub fn bench_served<'py>(
    py: Python<'py>,
    host: &str,
    port: u16,
    op: &str,
    protocol: &str,
    table: &str,
    clients: usize,
    seconds: f64,
    warmup: f64,
    value_size: usize,
    keyspace: u64,
    rate: f64,
    threads: usize,
    prefill: bool,
    samples: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let protocol = match protocol {
        "pegasus" => bench::Protocol::Pegasus,
        "redis" => bench::Protocol::Redis,
        p => {
            return Err(InvalidArgumentError::new_err(format!(
                "protocol is pegasus or redis, not {p:?}"
            )))
        }
    };
    let op = match op {
        "get" => bench::BenchOp::Get,
        "set" => bench::BenchOp::Set,
        o => {
            return Err(InvalidArgumentError::new_err(format!(
                "op is get or set, not {o:?}"
            )))
        }
    };
    let addr = py.allow_threads(|| bench::resolve(host, port))?;
    let spec = bench::Spec {
        addr,
        protocol,
        table: table.to_owned(),
        clients,
        op,
        seconds,
        warmup,
        value_size,
        keyspace,
        rate,
        threads,
    };
    if prefill {
        py.allow_threads(|| bench::prefill(&spec))?;
    }
    let r = py.allow_threads(|| bench::run(&spec))?;
    let d = PyDict::new(py);
    d.set_item("ops", r.ops)?;
    d.set_item("errors", r.errors)?;
    d.set_item("seconds", r.seconds)?;
    d.set_item("ops_per_sec", r.ops as f64 / r.seconds)?;
    d.set_item("p50_us", r.p50)?;
    d.set_item("p90_us", r.p90)?;
    d.set_item("p99_us", r.p99)?;
    d.set_item("p999_us", r.p999)?;
    d.set_item("max_us", r.max)?;
    d.set_item("mean_us", r.mean)?;
    if samples {
        d.set_item("latencies_us", r.latencies)?;
    }
    Ok(d)
}
