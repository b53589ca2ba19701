//! Python <-> Rust conversions of mutations, writes and file infos.

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyByteArray, PyBytes, PyInt, PyList, PyMemoryView, PyString, PyTuple};

use crate::codec::{
    Mutation, Op, Writes, OP_DELETE, OP_EMPTY, OP_MULTI_DELETE, OP_MULTI_PUT, OP_PUT, OP_RAW_PUT,
    OP_SOURCE_DECREE,
};
use crate::filecopy::ManifestEntry;
use crate::logscan::LogFileInfo;

use super::{InvalidArgumentError, InvalidTypeError};

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// `bytes` (no copy), `bytearray` or `memoryview` (copied).
pub fn get_bytes(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<PyBackedBytes> {
    if let Ok(b) = obj.downcast::<PyBytes>() {
        return Ok(PyBackedBytes::from(b.clone()));
    }
    if let Ok(b) = obj.downcast::<PyByteArray>() {
        return Ok(PyBackedBytes::from(b.clone()));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        let b = obj.py().get_type::<PyBytes>().call1((obj,))?;
        return Ok(PyBackedBytes::from(b.downcast_into::<PyBytes>()?));
    }
    Err(InvalidTypeError::new_err(format!(
        "{what} must be bytes, not {}",
        type_name(obj)
    )))
}

/// An int that fits `T`: InvalidTypeError for a non-int, InvalidArgumentError
/// when out of range.
pub fn get_int<'py, T: FromPyObject<'py>>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<T> {
    match obj.extract::<T>() {
        Ok(v) => Ok(v),
        Err(_) if obj.is_instance_of::<PyInt>() => Err(InvalidArgumentError::new_err(format!(
            "{what} out of range: {obj}"
        ))),
        Err(_) => Err(InvalidTypeError::new_err(format!(
            "{what} must be an int, not {}",
            type_name(obj)
        ))),
    }
}

/// An int argument taken as `get_int` takes it (typed errors, not pyo3's
/// bare TypeError or OverflowError).
pub struct Int<T>(pub T);

impl<'py, T: FromPyObject<'py>> FromPyObject<'py> for Int<T> {
    fn extract_bound(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        get_int(obj, "argument").map(Int)
    }
}

pub fn get_u64(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    get_int::<u64>(obj, what)
}

/// A tuple or list, as a tuple.
fn as_tuple<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyTuple>> {
    if let Ok(t) = obj.downcast::<PyTuple>() {
        return Ok(t.clone());
    }
    if let Ok(l) = obj.downcast::<PyList>() {
        return Ok(l.to_tuple());
    }
    Err(InvalidTypeError::new_err(format!(
        "{what} must be a tuple, not {}",
        type_name(obj)
    )))
}

/// A list or tuple, as a tuple snapshot of its items.
fn as_items<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyTuple>> {
    if let Ok(l) = obj.downcast::<PyList>() {
        return Ok(l.to_tuple());
    }
    if let Ok(t) = obj.downcast::<PyTuple>() {
        return Ok(t.clone());
    }
    Err(InvalidTypeError::new_err(format!(
        "{what} must be a list, not {}",
        type_name(obj)
    )))
}

fn fields<'py>(t: &Bound<'py, PyTuple>, n: usize, what: &str) -> PyResult<()> {
    if t.len() != n {
        return Err(InvalidArgumentError::new_err(format!(
            "{what} takes {n} fields, got {}",
            t.len()
        )));
    }
    Ok(())
}

pub fn get_str(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    match obj.downcast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => Err(InvalidTypeError::new_err(format!(
            "{what} must be a str, not {}",
            type_name(obj)
        ))),
    }
}

/// A list of (name, size, digest) manifest entries.
pub fn extract_manifest(obj: &Bound<'_, PyAny>) -> PyResult<Vec<ManifestEntry>> {
    let items = as_items(obj, "manifest")?;
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        let t = as_tuple(&item, "a manifest entry")?;
        fields(&t, 3, "a manifest entry (name, size, digest)")?;
        out.push(ManifestEntry {
            name: get_str(&t.get_item(0)?, "a file name")?,
            size: get_u64(&t.get_item(1)?, "size")?,
            digest: get_str(&t.get_item(2)?, "digest")?,
        });
    }
    Ok(out)
}

fn extract_op(obj: &Bound<'_, PyAny>) -> PyResult<Op<PyBackedBytes>> {
    let t = as_tuple(obj, "an op")?;
    if t.is_empty() {
        return Err(InvalidArgumentError::new_err("an op is a non-empty tuple"));
    }
    let kind: u8 = match get_int::<u8>(&t.get_item(0)?, "op type") {
        Ok(k) => k,
        Err(e) if e.is_instance_of::<InvalidArgumentError>(obj.py()) => u8::MAX,
        Err(e) => return Err(e),
    };
    let item = |i: usize| t.get_item(i);
    Ok(match kind {
        OP_PUT => {
            fields(&t, 5, "PUT")?;
            Op::Put {
                hash_key: get_bytes(&item(1)?, "hash_key")?,
                sort_key: get_bytes(&item(2)?, "sort_key")?,
                value: get_bytes(&item(3)?, "value")?,
                expire_ts: get_int(&item(4)?, "expire_ts")?,
            }
        }
        OP_DELETE => {
            fields(&t, 3, "DELETE")?;
            Op::Delete {
                hash_key: get_bytes(&item(1)?, "hash_key")?,
                sort_key: get_bytes(&item(2)?, "sort_key")?,
            }
        }
        OP_MULTI_PUT => {
            fields(&t, 4, "MULTI_PUT")?;
            let hash_key = get_bytes(&item(1)?, "hash_key")?;
            let list = as_items(&item(2)?, "MULTI_PUT pairs")?;
            let mut pairs = Vec::with_capacity(list.len());
            for pair in list.iter() {
                let pair = as_tuple(&pair, "a MULTI_PUT pair")?;
                fields(&pair, 2, "a MULTI_PUT pair")?;
                pairs.push((
                    get_bytes(&pair.get_item(0)?, "sort_key")?,
                    get_bytes(&pair.get_item(1)?, "value")?,
                ));
            }
            Op::MultiPut {
                hash_key,
                pairs,
                expire_ts: get_int(&item(3)?, "expire_ts")?,
            }
        }
        OP_MULTI_DELETE => {
            fields(&t, 3, "MULTI_DELETE")?;
            let hash_key = get_bytes(&item(1)?, "hash_key")?;
            let list = as_items(&item(2)?, "MULTI_DELETE sort keys")?;
            let mut sort_keys = Vec::with_capacity(list.len());
            for sk in list.iter() {
                sort_keys.push(get_bytes(&sk, "sort_key")?);
            }
            Op::MultiDelete {
                hash_key,
                sort_keys,
            }
        }
        OP_EMPTY => {
            fields(&t, 1, "EMPTY")?;
            Op::Empty
        }
        OP_RAW_PUT => {
            fields(&t, 3, "RAW_PUT")?;
            Op::RawPut {
                key: get_bytes(&item(1)?, "key")?,
                value: get_bytes(&item(2)?, "value")?,
            }
        }
        OP_SOURCE_DECREE => {
            fields(&t, 2, "SOURCE_DECREE")?;
            Op::SourceDecree(get_u64(&item(1)?, "source decree")?)
        }
        _ => {
            return Err(InvalidArgumentError::new_err(format!(
                "unknown op type {}",
                t.get_item(0)?.repr()?
            )))
        }
    })
}

fn extract_mutation(obj: &Bound<'_, PyAny>) -> PyResult<Mutation<PyBackedBytes>> {
    let t = as_tuple(obj, "a mutation")?;
    fields(&t, 4, "a mutation (decree, timestamp_us, cluster_id, ops)")?;
    let decree = get_u64(&t.get_item(0)?, "decree")?;
    let timestamp_us = get_u64(&t.get_item(1)?, "timestamp_us")?;
    let cluster_id = get_int::<u8>(&t.get_item(2)?, "cluster_id")?;
    if cluster_id > 127 {
        return Err(InvalidArgumentError::new_err(
            "cluster_id must be in 0..127",
        ));
    }
    let op_items = as_items(&t.get_item(3)?, "ops")?;
    let mut ops = Vec::with_capacity(op_items.len());
    for op in op_items.iter() {
        ops.push(extract_op(&op)?);
    }
    Ok(Mutation {
        decree,
        timestamp_us,
        cluster_id,
        ops,
    })
}

/// A list of mutation tuples. Byte strings are referenced, not copied.
pub fn extract_mutations(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Mutation<PyBackedBytes>>> {
    let items = as_items(obj, "mutations")?;
    let mut out = Vec::with_capacity(items.len());
    for m in items.iter() {
        out.push(extract_mutation(&m)?);
    }
    Ok(out)
}

fn op_to_py<'py>(py: Python<'py>, op: &Op<&[u8]>) -> PyResult<Bound<'py, PyTuple>> {
    let b = |s: &[u8]| PyBytes::new(py, s);
    Ok(match op {
        Op::Put {
            hash_key,
            sort_key,
            value,
            expire_ts,
        } => (OP_PUT, b(hash_key), b(sort_key), b(value), *expire_ts).into_pyobject(py)?,
        Op::Delete { hash_key, sort_key } => {
            (OP_DELETE, b(hash_key), b(sort_key)).into_pyobject(py)?
        }
        Op::MultiPut {
            hash_key,
            pairs,
            expire_ts,
        } => {
            let mut list = Vec::with_capacity(pairs.len());
            for (sk, v) in pairs {
                list.push((b(sk), b(v)).into_pyobject(py)?);
            }
            (
                OP_MULTI_PUT,
                b(hash_key),
                PyList::new(py, list)?,
                *expire_ts,
            )
                .into_pyobject(py)?
        }
        Op::MultiDelete {
            hash_key,
            sort_keys,
        } => {
            let list = PyList::new(py, sort_keys.iter().map(|sk| b(sk)))?;
            (OP_MULTI_DELETE, b(hash_key), list).into_pyobject(py)?
        }
        Op::Empty => (OP_EMPTY,).into_pyobject(py)?,
        Op::RawPut { key, value } => (OP_RAW_PUT, b(key), b(value)).into_pyobject(py)?,
        Op::SourceDecree(decree) => (OP_SOURCE_DECREE, *decree).into_pyobject(py)?,
    })
}

fn mutation_to_py<'py>(py: Python<'py>, m: &Mutation<&[u8]>) -> PyResult<Bound<'py, PyTuple>> {
    let mut ops = Vec::with_capacity(m.ops.len());
    for op in &m.ops {
        ops.push(op_to_py(py, op)?);
    }
    (
        m.decree,
        m.timestamp_us,
        m.cluster_id,
        PyList::new(py, ops)?,
    )
        .into_pyobject(py)
}

/// Converting this many objects or more pauses the cyclic GC: building a
/// large list of fresh tuples otherwise triggers collections that walk the
/// whole young heap again and again (more than half the time of a big scan).
const GC_PAUSE_ITEMS: usize = 4096;

/// Keeps the cyclic GC disabled while alive, if it was enabled. The GIL is
/// held throughout, so no other Python code runs in between.
pub struct GcPause<'py> {
    gc: Option<Bound<'py, PyModule>>,
}

impl<'py> GcPause<'py> {
    pub fn new(py: Python<'py>, items: usize) -> PyResult<Self> {
        if items < GC_PAUSE_ITEMS {
            return Ok(GcPause { gc: None });
        }
        let gc = py.import("gc")?;
        if !gc.call_method0("isenabled")?.is_truthy()? {
            return Ok(GcPause { gc: None });
        }
        gc.call_method0("disable")?;
        Ok(GcPause { gc: Some(gc) })
    }
}

impl Drop for GcPause<'_> {
    fn drop(&mut self) {
        if let Some(gc) = self.gc.take() {
            if let Err(err) = gc.call_method0("enable") {
                err.write_unraisable(gc.py(), None);
            }
        }
    }
}

pub fn mutations_to_py<'py>(
    py: Python<'py>,
    muts: &[Mutation<&[u8]>],
) -> PyResult<Bound<'py, PyList>> {
    let _pause = GcPause::new(py, muts.len())?;
    let mut out = Vec::with_capacity(muts.len());
    for m in muts {
        out.push(mutation_to_py(py, m)?);
    }
    PyList::new(py, out)
}

pub fn writes_to_py<'py>(py: Python<'py>, writes: &Writes) -> PyResult<Bound<'py, PyList>> {
    let _pause = GcPause::new(py, writes.len())?;
    let mut out = Vec::with_capacity(writes.len());
    for (k, v) in writes.iter() {
        let key = PyBytes::new(py, k).into_any();
        let value = match v {
            Some(v) => PyBytes::new(py, v).into_any(),
            None => py.None().into_bound(py),
        };
        out.push(PyTuple::new(py, [key, value])?);
    }
    PyList::new(py, out)
}

pub fn infos_to_py<'py>(py: Python<'py>, infos: &[LogFileInfo]) -> PyResult<Bound<'py, PyList>> {
    let mut out = Vec::with_capacity(infos.len());
    for i in infos {
        out.push(
            (
                i.name.as_str(),
                i.first_decree,
                i.last_decree,
                i.valid_end,
                i.size,
            )
                .into_pyobject(py)?,
        );
    }
    PyList::new(py, out)
}
