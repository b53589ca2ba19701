//! PyO3 glue: the `pegasus_fast._rust` module. Everything heavy runs in the
//! core modules with the GIL released; this layer only converts.

mod convert;
mod front;
mod scan;

use std::path::PathBuf;

use pyo3::exceptions::{PyIsADirectoryError, PyNotADirectoryError, PyOSError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyList, PyType};

use crate::codec;
use crate::crc;
use crate::error::{Error, PathError};
use crate::filecopy::{self, receive};
use crate::logscan;
use convert::{
    extract_manifest, extract_mutations, get_bytes, get_int, get_str, get_u64, infos_to_py,
    mutations_to_py, writes_to_py, Int,
};

/// Inputs at least this big are worked on with the GIL released.
const RELEASE_GIL_BYTES: usize = 64 << 10;
const RELEASE_GIL_MUTATIONS: usize = 64;

// Bad input is raised as the classes of `pegasus_fast.errors`; they subclass
// ValueError and TypeError, so callers catching those still do.
pyo3::import_exception!(pegasus_fast.errors, InvalidArgumentError);
pyo3::import_exception!(pegasus_fast.errors, InvalidTypeError);

static WAL_CORRUPTION_ERROR: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static CHECKSUM_MISMATCH_ERROR: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static FILE_CHANGED_ERROR: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static PEGASUS_PROTOCOL_ERROR: GILOnceCell<Py<PyType>> = GILOnceCell::new();

/// The one place a core error becomes a Python exception.
impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        Python::with_gil(|py| {
            let raised = match err {
                Error::Corruption {
                    path,
                    offset,
                    reason,
                } => WAL_CORRUPTION_ERROR
                    .import(py, "pegasus_fast.errors", "WalCorruptionError")
                    .and_then(|cls| cls.call1((path, offset, reason))),
                Error::ChecksumMismatch {
                    path,
                    expected,
                    actual,
                } => CHECKSUM_MISMATCH_ERROR
                    .import(py, "pegasus_fast.errors", "ChecksumMismatchError")
                    .and_then(|cls| cls.call1((path, expected, actual))),
                Error::FileChanged {
                    path,
                    expected_size,
                    actual_size,
                } => FILE_CHANGED_ERROR
                    .import(py, "pegasus_fast.errors", "FileChangedError")
                    .and_then(|cls| cls.call1((path, expected_size, actual_size))),
                Error::InvalidArgument(msg) => return InvalidArgumentError::new_err(msg),
                Error::Protocol { offset, reason } => PEGASUS_PROTOCOL_ERROR
                    .import(py, "pegasus_fast.errors", "PegasusProtocolError")
                    .and_then(|cls| cls.call1((offset, reason))),
                // pyo3 maps most kinds to the OSError subclass Python would raise,
                // but not these two.
                Error::Io(err) if os_error_code(&err).is_some() => return os_error(err),
                Error::Io(err) if err.kind() == std::io::ErrorKind::IsADirectory => {
                    return PyIsADirectoryError::new_err(err.to_string())
                }
                Error::Io(err) if err.kind() == std::io::ErrorKind::NotADirectory => {
                    return PyNotADirectoryError::new_err(err.to_string())
                }
                Error::Io(err) => return PyErr::from(err),
            };
            match raised {
                Ok(exc) => PyErr::from_value(exc),
                Err(import_failed) => import_failed,
            }
        })
    }
}

/// The OS error code of an I/O error, through an [`Error::io_at`] path.
fn os_error_code(err: &std::io::Error) -> Option<i32> {
    match err.get_ref().and_then(|e| e.downcast_ref::<PathError>()) {
        Some(at) => at.source.raw_os_error(),
        None => err.raw_os_error(),
    }
}

/// `OSError(errno, strerror, filename)`, as Python's own I/O raises it: Python picks the subclass
/// (FileNotFoundError, IsADirectoryError, ...) from the errno.
fn os_error(err: std::io::Error) -> PyErr {
    let code = os_error_code(&err).unwrap_or(0);
    let strerror = std::io::Error::from_raw_os_error(code).to_string();
    let strerror = match strerror.find(" (os error ") {
        Some(at) => strerror[..at].to_string(),
        None => strerror,
    };
    match err.get_ref().and_then(|e| e.downcast_ref::<PathError>()) {
        Some(at) => PyOSError::new_err((code, strerror, at.path.clone())),
        None => PyOSError::new_err((code, strerror)),
    }
}

/// Run `f` with the GIL released when `heavy`, else directly.
fn run<T, F>(py: Python<'_>, heavy: bool, f: F) -> T
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    if heavy {
        py.allow_threads(f)
    } else {
        f()
    }
}

/// `fdatasync` each of `fds` at once, the GIL released: each one's result, 0 or its errno.
#[pyfunction]
#[pyo3(name = "fdatasync_all")]
fn py_fdatasync_all(py: Python<'_>, fds: Vec<i32>) -> Vec<i32> {
    py.allow_threads(|| crate::syncpool::sync_all(&fds))
}

/// An `fdatasync` running on the Rust pool (`fdatasync_start`).
#[pyclass(name = "StartedSync", frozen)]
struct PyStartedSync {
    inner: std::sync::Arc<crate::syncpool::Started>,
}

#[pymethods]
impl PyStartedSync {
    /// Block, the GIL released, until the `fdatasync` has returned: 0, or its errno.
    #[pyo3(text_signature = "(self)")]
    fn wait(&self, py: Python<'_>) -> i32 {
        let inner = &self.inner;
        py.allow_threads(|| inner.wait())
    }

    /// Whether the `fdatasync` has returned.
    #[getter]
    fn done(&self) -> bool {
        self.inner.poll().is_some()
    }
}

/// Start `fdatasync(fd)` on a Rust thread and return at once; the caller keeps `fd` open
/// until the answer's `wait()` has returned.
#[pyfunction]
#[pyo3(name = "fdatasync_start")]
fn py_fdatasync_start(fd: i32) -> PyStartedSync {
    PyStartedSync {
        inner: crate::syncpool::start(fd),
    }
}

#[pyfunction]
#[pyo3(name = "crc32c", signature = (data, crc=None), text_signature = "(data, crc=0)")]
fn py_crc32c(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    crc: Option<&Bound<'_, PyAny>>,
) -> PyResult<u32> {
    let data = get_bytes(data, "data")?;
    let crc = crc.map_or(Ok(0), |c| get_int::<u32>(c, "crc"))?;
    Ok(run(py, data.len() >= RELEASE_GIL_BYTES, || {
        crc::crc32c(&data, crc)
    }))
}

#[pyfunction]
#[pyo3(name = "crc64", signature = (data, crc=None), text_signature = "(data, crc=0)")]
fn py_crc64(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    crc: Option<&Bound<'_, PyAny>>,
) -> PyResult<u64> {
    let data = get_bytes(data, "data")?;
    let crc = crc.map_or(Ok(0), |c| get_u64(c, "crc"))?;
    Ok(run(py, data.len() >= RELEASE_GIL_BYTES, || {
        crc::crc64(&data, crc)
    }))
}

#[pyfunction]
#[pyo3(
    name = "partition_index",
    signature = (hash_key, partition_count, sort_key=None),
    text_signature = "(hash_key, partition_count, sort_key=b\"\")"
)]
fn py_partition_index(
    hash_key: &Bound<'_, PyAny>,
    partition_count: &Bound<'_, PyAny>,
    sort_key: Option<&Bound<'_, PyAny>>,
) -> PyResult<u64> {
    let hash_key = get_bytes(hash_key, "hash_key")?;
    let sort_key = sort_key.map(|s| get_bytes(s, "sort_key")).transpose()?;
    let count = match get_u64(partition_count, "partition_count") {
        Ok(c) if c > 0 => c,
        Ok(_) => {
            return Err(InvalidArgumentError::new_err(
                "partition_count must be positive",
            ))
        }
        Err(e) if e.is_instance_of::<InvalidArgumentError>(partition_count.py()) => {
            return Err(InvalidArgumentError::new_err(
                "partition_count must be positive",
            ))
        }
        Err(e) => return Err(e),
    };
    let sort_key: &[u8] = sort_key.as_deref().unwrap_or(b"");
    Ok(crc::partition_index(&hash_key, count, sort_key).unwrap_or(0))
}

#[pyfunction]
#[pyo3(name = "encode_block")]
fn py_encode_block<'py>(
    py: Python<'py>,
    mutations: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let muts = extract_mutations(mutations)?;
    let block = run(py, muts.len() >= RELEASE_GIL_MUTATIONS, || {
        codec::encode_block(&muts)
    })?;
    Ok(PyBytes::new(py, &block))
}

#[pyfunction]
#[pyo3(name = "decode_block")]
fn py_decode_block<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let data = get_bytes(data, "data")?;
    let muts = run(py, data.len() >= RELEASE_GIL_BYTES, || {
        codec::decode_block(&data)
    })?;
    mutations_to_py(py, &muts)
}

#[pyfunction]
#[pyo3(name = "decode_blocks")]
fn py_decode_blocks<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let data = get_bytes(data, "data")?;
    let muts = run(py, data.len() >= RELEASE_GIL_BYTES, || {
        codec::decode_blocks(&data)
    })?;
    mutations_to_py(py, &muts)
}

/// (data, first decree, last decree, first timestamp_us, end, torn, skipped through)
type BlockRunPy<'py> = (Bound<'py, PyBytes>, u64, u64, u64, u64, bool, u64);

#[pyfunction]
#[pyo3(
    name = "read_log_blocks",
    signature = (path, offset, start_decree, max_bytes, max_decree, skip_cluster_id=Int(0)),
    text_signature = "(path, offset, start_decree, max_bytes, max_decree, skip_cluster_id=0)"
)]
fn py_read_log_blocks<'py>(
    py: Python<'py>,
    path: PathBuf,
    offset: Int<u64>,
    start_decree: Int<u64>,
    max_bytes: Int<u64>,
    max_decree: Int<u64>,
    skip_cluster_id: Int<u8>,
) -> PyResult<BlockRunPy<'py>> {
    let (Int(offset), Int(start_decree), Int(max_bytes)) = (offset, start_decree, max_bytes);
    let (Int(max_decree), Int(skip_cluster_id)) = (max_decree, skip_cluster_id);
    let r = py.allow_threads(|| {
        logscan::read_log_blocks(
            &path,
            offset,
            start_decree,
            max_bytes,
            max_decree,
            skip_cluster_id,
        )
    })?;
    Ok((
        PyBytes::new(py, &r.data),
        r.first_decree,
        r.last_decree,
        r.first_timestamp_us,
        r.end,
        r.torn,
        r.skipped_through,
    ))
}

#[pyfunction]
#[pyo3(
    name = "mutation_writes",
    signature = (mutations, tombstone_seconds=Int(0)),
    text_signature = "(mutations, tombstone_seconds=0)"
)]
fn py_mutation_writes<'py>(
    py: Python<'py>,
    mutations: &Bound<'py, PyAny>,
    tombstone_seconds: Int<u32>,
) -> PyResult<Bound<'py, PyList>> {
    let Int(tombstone_seconds) = tombstone_seconds;
    let muts = extract_mutations(mutations)?;
    let writes = run(py, muts.len() >= RELEASE_GIL_MUTATIONS, || {
        codec::mutation_writes(&muts, tombstone_seconds)
    })?;
    writes_to_py(py, &writes)
}

/// The write path in one call: the WAL block of `mutations`, and their RocksDB
/// writes put into `batch` (anything with `put(key, value)` and `delete(key)`: a
/// rocksdict WriteBatch), with no list of writes built in between. Both are made
/// before either is used, so an error leaves `batch` untouched.
#[pyfunction]
#[pyo3(
    name = "encode_write",
    signature = (mutations, batch, tombstone_seconds=Int(0)),
    text_signature = "(mutations, batch, tombstone_seconds=0)"
)]
fn py_encode_write<'py>(
    py: Python<'py>,
    mutations: &Bound<'py, PyAny>,
    batch: &Bound<'py, PyAny>,
    tombstone_seconds: Int<u32>,
) -> PyResult<Bound<'py, PyBytes>> {
    let Int(tombstone_seconds) = tombstone_seconds;
    let muts = extract_mutations(mutations)?;
    let (block, writes) = run(py, muts.len() >= RELEASE_GIL_MUTATIONS, || {
        let block = codec::encode_block(&muts)?;
        codec::mutation_writes(&muts, tombstone_seconds).map(|w| (block, w))
    })?;
    let put = batch.getattr(pyo3::intern!(py, "put"))?;
    for (key, value) in writes.iter() {
        let key = PyBytes::new(py, key);
        match value {
            Some(v) => put.call1((key, PyBytes::new(py, v)))?,
            None => batch.call_method1(pyo3::intern!(py, "delete"), (key,))?,
        };
    }
    Ok(PyBytes::new(py, &block))
}

/// `sum(len(k) + len(v))` over a dict whose every key and value is exactly `bytes`;
/// -1 for anything else (another mapping, other types: the caller converts them).
/// multi_set's checks in one call instead of a Python pass over the pairs.
#[pyfunction]
#[pyo3(name = "pairs_bytes")]
fn py_pairs_bytes(pairs: &Bound<'_, PyAny>) -> i64 {
    let Ok(dict) = pairs.downcast_exact::<PyDict>() else {
        return -1;
    };
    let mut total: i64 = 0;
    for (k, v) in dict.iter() {
        match (k.downcast_exact::<PyBytes>(), v.downcast_exact::<PyBytes>()) {
            (Ok(k), Ok(v)) => total += (k.as_bytes().len() + v.as_bytes().len()) as i64,
            _ => return -1,
        }
    }
    total
}

/// The common case of an incr, decided in one call (`records::incr_fast`): (the new value's
/// ASCII decimal, the new value, the expire_ts to store: `expire_ts`, else 0). None where
/// Python decides (a record with a TTL among them: the store's clock is Python's).
#[pyfunction]
#[pyo3(
    name = "incr_step",
    signature = (raw, increment, expire_ts=None),
    text_signature = "(raw, increment, expire_ts=None)"
)]
fn py_incr_step<'py>(
    py: Python<'py>,
    raw: Option<&[u8]>,
    increment: i64,
    expire_ts: Option<u32>,
) -> Option<(Bound<'py, PyBytes>, i64, u32)> {
    let new = crate::records::incr_fast(raw, increment)?;
    Some((
        PyBytes::new(py, new.to_string().as_bytes()),
        new,
        expire_ts.unwrap_or(0),
    ))
}

#[pyfunction]
#[pyo3(
    name = "scan_log_file",
    signature = (path, offset=Int(0), start_decree=Int(0), max_bytes=Int(0)),
    text_signature = "(path, offset=0, start_decree=0, max_bytes=0)"
)]
fn py_scan_log_file<'py>(
    py: Python<'py>,
    path: PathBuf,
    offset: Int<u64>,
    start_decree: Int<u64>,
    max_bytes: Int<u64>,
) -> PyResult<(Bound<'py, PyList>, u64, bool)> {
    let (Int(offset), Int(start_decree), Int(max_bytes)) = (offset, start_decree, max_bytes);
    let file = py.allow_threads(|| logscan::read_log_file(&path, offset, max_bytes))?;
    let muts = py.allow_threads(|| {
        let mut out = Vec::new();
        file.mutations(start_decree, &mut out).map(|()| out)
    })?;
    Ok((mutations_to_py(py, &muts)?, file.end, file.torn))
}

#[pyfunction]
#[pyo3(
    name = "scan_log_dir",
    signature = (path, start_decree=Int(0)),
    text_signature = "(path, start_decree=0)"
)]
fn py_scan_log_dir<'py>(
    py: Python<'py>,
    path: PathBuf,
    start_decree: Int<u64>,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let Int(start_decree) = start_decree;
    let files = py.allow_threads(|| logscan::read_log_dir(&path))?;
    let muts = py.allow_threads(|| logscan::dir_mutations(&files, start_decree))?;
    let infos: Vec<_> = files.iter().map(logscan::ScannedFile::info).collect();
    Ok((mutations_to_py(py, &muts)?, infos_to_py(py, &infos)?))
}

fn positive_batch_size(Int(batch_size): Int<i64>) -> PyResult<usize> {
    usize::try_from(batch_size)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| InvalidArgumentError::new_err("batch_size must be positive"))
}

/// Replay batches as `[(last_decree, [(key, value | None), ...]), ...]`.
fn batches_to_py<'py>(py: Python<'py>, batches: &[logscan::Batch]) -> PyResult<Bound<'py, PyList>> {
    let total: usize = batches.iter().map(|(_, w)| w.len()).sum();
    let _pause = convert::GcPause::new(py, total)?;
    let mut out = Vec::with_capacity(batches.len());
    for (last, writes) in batches {
        out.push((*last, writes_to_py(py, writes)?).into_pyobject(py)?);
    }
    PyList::new(py, out)
}

#[pyfunction]
#[pyo3(
    name = "replay_log_dir",
    signature = (path, start_decree, batch_size=Int(4096), tombstone_seconds=Int(0)),
    text_signature = "(path, start_decree, batch_size=4096, tombstone_seconds=0)"
)]
fn py_replay_log_dir<'py>(
    py: Python<'py>,
    path: PathBuf,
    start_decree: Int<u64>,
    batch_size: Int<i64>,
    tombstone_seconds: Int<u32>,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let Int(start_decree) = start_decree;
    let Int(tombstone_seconds) = tombstone_seconds;
    let batch_size = positive_batch_size(batch_size)?;
    let (batches, infos) = py.allow_threads(|| {
        logscan::replay_log_dir(&path, start_decree, batch_size, tombstone_seconds)
    })?;
    Ok((batches_to_py(py, &batches)?, infos_to_py(py, &infos)?))
}

#[pyfunction]
#[pyo3(
    name = "replay_log_file",
    signature = (path, start_decree, batch_size=Int(4096), tombstone_seconds=Int(0)),
    text_signature = "(path, start_decree, batch_size=4096, tombstone_seconds=0)"
)]
fn py_replay_log_file<'py>(
    py: Python<'py>,
    path: PathBuf,
    start_decree: Int<u64>,
    batch_size: Int<i64>,
    tombstone_seconds: Int<u32>,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyAny>, bool)> {
    let Int(start_decree) = start_decree;
    let Int(tombstone_seconds) = tombstone_seconds;
    let batch_size = positive_batch_size(batch_size)?;
    let (batches, info, torn) = py.allow_threads(|| {
        logscan::replay_log_file(&path, start_decree, batch_size, tombstone_seconds)
    })?;
    let info = infos_to_py(py, std::slice::from_ref(&info))?.get_item(0)?;
    Ok((batches_to_py(py, &batches)?, info, torn))
}

#[pyfunction]
#[pyo3(name = "hash_file")]
fn py_hash_file(py: Python<'_>, path: PathBuf) -> PyResult<(u64, String)> {
    Ok(py.allow_threads(|| filecopy::hash_file(&path))?)
}

/// The follower's receive of a checkpoint's chunks (`filecopy::receive`). Each `write` and
/// `finish` runs with the GIL released: a served follower's gRPC threads go on taking the next
/// message while a chunk is written and hashed.
#[pyclass(name = "CheckpointReceiver", module = "pegasus_fast._rust")]
struct PyCheckpointReceiver {
    inner: receive::Receiver,
}

#[pymethods]
impl PyCheckpointReceiver {
    #[new]
    #[pyo3(signature = (directory, manifest, sync=true))]
    fn new(directory: PathBuf, manifest: &Bound<'_, PyAny>, sync: bool) -> PyResult<Self> {
        let entries = extract_manifest(manifest)?;
        Ok(PyCheckpointReceiver {
            inner: receive::Receiver::new(&directory, entries, sync)?,
        })
    }

    /// Arguments are converted in order (name, offset, data, crc32c), as the twin checks them.
    #[pyo3(text_signature = "(self, name, offset, data, crc32c)")]
    fn write(
        &mut self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        crc32c: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let name = get_str(name, "name")?;
        let offset = get_int::<i128>(offset, "offset")?;
        let data = get_bytes(data, "data")?;
        let crc32c = get_int::<u32>(crc32c, "crc32c")?;
        let inner = &mut self.inner;
        Ok(py.allow_threads(|| inner.write(&name, offset, &data, crc32c))?)
    }

    #[pyo3(text_signature = "(self)")]
    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        let inner = &mut self.inner;
        Ok(py.allow_threads(|| inner.finish())?)
    }

    #[pyo3(text_signature = "(self)")]
    fn close(&mut self) {
        self.inner.close();
    }
}

#[pymodule]
fn _rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("BLOCK_HEADER_SIZE", codec::BLOCK_HEADER_SIZE)?;
    m.add_function(wrap_pyfunction!(py_crc32c, m)?)?;
    m.add_function(wrap_pyfunction!(py_fdatasync_all, m)?)?;
    m.add_function(wrap_pyfunction!(py_fdatasync_start, m)?)?;
    m.add_class::<PyStartedSync>()?;
    m.add_function(wrap_pyfunction!(py_crc64, m)?)?;
    m.add_function(wrap_pyfunction!(py_partition_index, m)?)?;
    m.add_function(wrap_pyfunction!(py_encode_block, m)?)?;
    m.add_function(wrap_pyfunction!(py_decode_block, m)?)?;
    m.add_function(wrap_pyfunction!(py_decode_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(py_mutation_writes, m)?)?;
    m.add_function(wrap_pyfunction!(py_encode_write, m)?)?;
    m.add_function(wrap_pyfunction!(py_pairs_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(py_incr_step, m)?)?;
    m.add_function(wrap_pyfunction!(scan::py_scan_records, m)?)?;
    m.add_function(wrap_pyfunction!(scan::py_scan_batch, m)?)?;
    m.add_function(wrap_pyfunction!(scan::py_scan_range, m)?)?;
    m.add_function(wrap_pyfunction!(py_read_log_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(py_scan_log_file, m)?)?;
    m.add_function(wrap_pyfunction!(py_scan_log_dir, m)?)?;
    m.add_function(wrap_pyfunction!(py_replay_log_dir, m)?)?;
    m.add_function(wrap_pyfunction!(py_replay_log_file, m)?)?;
    m.add_function(wrap_pyfunction!(py_hash_file, m)?)?;
    m.add_class::<PyCheckpointReceiver>()?;
    m.add_class::<scan::PyRecordDigest>()?;
    m.add_class::<front::PyFront>()?;
    m.add_class::<front::PyClient>()?;
    m.add_function(wrap_pyfunction!(front::bench_served, m)?)?;
    Ok(())
}
