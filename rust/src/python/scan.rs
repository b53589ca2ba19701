//! Scans of a RocksDB iterator (a rocksdict `RdictIter`) driven from Rust:
//! its `key`, `value` and `next` are called without a Python loop,
//! and only live records become Python objects.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::digest::{encode_record, RecordDigest, Span};
use crate::records::{key_matches, live_value, scan_record, Scanned};

use super::InvalidArgumentError;

struct Iter<'py> {
    it: Bound<'py, PyAny>,
    key: Bound<'py, PyAny>,
    value: Bound<'py, PyAny>,
    next: Bound<'py, PyAny>,
}

impl<'py> Iter<'py> {
    fn new(it: &Bound<'py, PyAny>) -> PyResult<Self> {
        let py = it.py();
        Ok(Iter {
            it: it.clone(),
            key: it.getattr(pyo3::intern!(py, "key"))?,
            value: it.getattr(pyo3::intern!(py, "value"))?,
            next: it.getattr(pyo3::intern!(py, "next"))?,
        })
    }

    /// Calls `f(key, value)` for up to `limit` entries (or until `f` returns false);
    /// returns whether the iterator has more. At its end, `status()` raises a
    /// RocksDB error that stopped it early.
    fn each(
        &self,
        limit: usize,
        mut f: impl FnMut(&[u8], &[u8]) -> PyResult<bool>,
    ) -> PyResult<bool> {
        let mut n = 0;
        while n < limit {
            // key() is None once the iterator is invalid: no valid() call per entry
            let key = self.key.call0()?;
            if key.is_none() {
                self.it
                    .call_method0(pyo3::intern!(self.it.py(), "status"))?;
                return Ok(false);
            }
            let value = self.value.call0()?;
            let go_on = f(
                key.downcast::<PyBytes>()?.as_bytes(),
                value.downcast::<PyBytes>()?.as_bytes(),
            )?;
            self.next.call0()?;
            n += 1;
            if !go_on {
                break;
            }
        }
        Ok(true)
    }
}

fn short_value() -> PyErr {
    InvalidArgumentError::new_err("a stored value is shorter than its 12-byte header")
}

#[pyfunction]
#[pyo3(name = "scan_records")]
pub fn py_scan_records<'py>(
    py: Python<'py>,
    it: &Bound<'py, PyAny>,
    now: i64,
    limit: usize,
) -> PyResult<(Bound<'py, PyList>, bool)> {
    let iter = Iter::new(it)?;
    let out = PyList::empty(py);
    let more = iter.each(limit, |key, raw| {
        match scan_record(key, raw, now) {
            Scanned::Skip => {}
            Scanned::Short => return Err(short_value()),
            Scanned::Live(hk, sk, v) => out.append(PyTuple::new(
                py,
                [
                    PyBytes::new(py, hk),
                    PyBytes::new(py, sk),
                    PyBytes::new(py, v),
                ],
            )?)?,
        }
        Ok(true)
    })?;
    Ok((out, more))
}

/// Hash keys, sort keys and values as three contiguous buffers, each with
/// `count + 1` little-endian u64 offsets.
type BatchPy<'py> = (u64, [Bound<'py, PyBytes>; 6], bool);

#[pyfunction]
#[pyo3(name = "scan_batch")]
pub fn py_scan_batch<'py>(
    py: Python<'py>,
    it: &Bound<'py, PyAny>,
    now: i64,
    max_bytes: usize,
) -> PyResult<BatchPy<'py>> {
    let iter = Iter::new(it)?;
    let mut bufs: [Vec<u8>; 3] = Default::default();
    let mut offsets: [Vec<u8>; 3] = [
        0u64.to_le_bytes().to_vec(),
        0u64.to_le_bytes().to_vec(),
        0u64.to_le_bytes().to_vec(),
    ];
    let mut count = 0u64;
    let mut total = 0usize;
    let more = iter.each(usize::MAX, |key, raw| {
        match scan_record(key, raw, now) {
            Scanned::Skip => {}
            Scanned::Short => return Err(short_value()),
            Scanned::Live(hk, sk, v) => {
                for (i, part) in [hk, sk, v].into_iter().enumerate() {
                    bufs[i].extend_from_slice(part);
                    offsets[i].extend_from_slice(&(bufs[i].len() as u64).to_le_bytes());
                    total += part.len();
                }
                count += 1;
            }
        }
        Ok(total < max_bytes.max(1))
    })?;
    let b = |v: &[u8]| PyBytes::new(py, v);
    Ok((
        count,
        [
            b(&bufs[0]),
            b(&offsets[0]),
            b(&bufs[1]),
            b(&offsets[1]),
            b(&bufs[2]),
            b(&offsets[2]),
        ],
        more,
    ))
}

/// Records of one sort-key range of a positioned iterator: `ranges.read` after its seek.
#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(
    name = "scan_range",
    signature = (it, now, end, reverse, prefix_len, filter_type, pattern, max_count, max_bytes, no_value, out)
)]
pub fn py_scan_range<'py>(
    py: Python<'py>,
    it: &Bound<'py, PyAny>,
    now: i64,
    end: &[u8],
    reverse: bool,
    prefix_len: usize,
    filter_type: u8,
    pattern: &[u8],
    max_count: Option<u64>,
    max_bytes: Option<u64>,
    no_value: bool,
    out: &Bound<'py, PyDict>,
) -> PyResult<bool> {
    if key_matches(filter_type, b"", b"").is_none() {
        return Err(InvalidArgumentError::new_err(format!(
            "unknown filter type {filter_type}"
        )));
    }
    let key_of = it.getattr(pyo3::intern!(py, "key"))?;
    let value_of = it.getattr(pyo3::intern!(py, "value"))?;
    let step = if reverse {
        it.getattr(pyo3::intern!(py, "prev"))?
    } else {
        it.getattr(pyo3::intern!(py, "next"))?
    };
    let (cap_count, cap_bytes) = (max_count.unwrap_or(u64::MAX), max_bytes.unwrap_or(u64::MAX));
    let (mut count, mut size) = (0u64, 0u64);
    let empty = PyBytes::new(py, b"");
    loop {
        let key = key_of.call0()?;
        if key.is_none() {
            it.call_method0(pyo3::intern!(py, "status"))?;
            return Ok(true);
        }
        let k = key.downcast::<PyBytes>()?.as_bytes();
        let past = if reverse { k < end } else { k >= end };
        if past {
            return Ok(true);
        }
        if count >= cap_count || size >= cap_bytes {
            return Ok(false);
        }
        let raw_obj = value_of.call0()?;
        let raw = raw_obj.downcast::<PyBytes>()?.as_bytes();
        if let Some(value) = live_value(raw, now).map_err(|_| short_value())? {
            let sk = k.get(prefix_len..).unwrap_or(b"");
            if key_matches(filter_type, pattern, sk) == Some(true) {
                let value = if no_value { &b""[..] } else { value };
                if no_value {
                    out.set_item(PyBytes::new(py, sk), &empty)?;
                } else {
                    out.set_item(PyBytes::new(py, sk), PyBytes::new(py, value))?;
                }
                count += 1;
                size += (sk.len() + value.len()) as u64;
            }
        }
        step.call0()?;
    }
}

/// `digest::RecordDigest`: the records are read from the iterator with the GIL held (rocksdict
/// is a Python object), copied into one buffer, then digested with the GIL released.
#[pyclass(name = "RecordDigest", module = "pegasus_fast._rust")]
pub struct PyRecordDigest {
    inner: RecordDigest,
}

#[pymethods]
impl PyRecordDigest {
    #[new]
    #[pyo3(signature = (chunk_bits=10))]
    fn new(chunk_bits: u32) -> PyResult<Self> {
        if chunk_bits > 31 {
            return Err(InvalidArgumentError::new_err(format!(
                "chunk_bits out of range: {chunk_bits}"
            )));
        }
        Ok(PyRecordDigest {
            inner: RecordDigest::new(chunk_bits),
        })
    }

    /// Reads `it` from where it stands, up to `end` (exclusive; None: its end), stopping once
    /// about `max_bytes` were read; returns whether records may remain.
    #[pyo3(signature = (it, now, end, max_bytes))]
    fn feed(
        &mut self,
        py: Python<'_>,
        it: &Bound<'_, PyAny>,
        now: i64,
        end: Option<&[u8]>,
        max_bytes: usize,
    ) -> PyResult<bool> {
        let iter = Iter::new(it)?;
        // the live records' digest bytes, encoded while read (the GIL held), hashed without it
        let mut buf: Vec<u8> = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        let mut read = 0usize;
        let mut at_end = false;
        let more = iter.each(usize::MAX, |key, raw| {
            if end.is_some_and(|e| key >= e) {
                at_end = true;
                return Ok(false);
            }
            encode_record(&mut buf, &mut spans, key, raw, now).map_err(|_| short_value())?;
            read += key.len() + raw.len();
            Ok(read < max_bytes.max(1))
        })?;
        let inner = &mut self.inner;
        py.allow_threads(|| inner.add_encoded(&buf, &spans));
        Ok(more && !at_end)
    }

    /// Every chunk as `(last key, record count, BLAKE3)`, the open one closed.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let chunks = self.inner.finish();
        let out = PyList::empty(py);
        for c in chunks {
            out.append((
                PyBytes::new(py, &c.last_key),
                c.count,
                PyBytes::new(py, &c.digest),
            ))?;
        }
        Ok(out)
    }
}
