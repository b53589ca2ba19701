//! Pegasus's client protocol (docs/pegasus-protocol.md): request frames and
//! compact requests, reply frames and compact responses, both directions.
//!
//! The twin of `net/pegasus/frame.py`, `requests.py` and `replies.py`: the
//! same compact shapes (the glue turns them into the very tuples the Python
//! decoder makes), the same bytes, the same offsets for what is refused.

use super::thrift::*;

// -- operations (codes.py) -------------------------------------------------------

pub const OP_UNKNOWN: u8 = 0;
pub const OP_QUERY_CFG: u8 = 1;
pub const OP_PUT: u8 = 2;
pub const OP_MULTI_PUT: u8 = 3;
pub const OP_REMOVE: u8 = 4;
pub const OP_MULTI_REMOVE: u8 = 5;
pub const OP_GET: u8 = 6;
pub const OP_MULTI_GET: u8 = 7;
pub const OP_SORTKEY_COUNT: u8 = 8;
pub const OP_TTL: u8 = 9;
pub const OP_INCR: u8 = 10;
pub const OP_CHECK_AND_SET: u8 = 11;
pub const OP_CHECK_AND_MUTATE: u8 = 12;
pub const OP_BATCH_GET: u8 = 13;
pub const OP_GET_SCANNER: u8 = 14;
pub const OP_SCAN: u8 = 15;
pub const OP_CLEAR_SCANNER: u8 = 16;
pub const OP_BAD_REQUEST: u8 = 17;
/// ours, not Pegasus's: a primary's replication request to a secondary node (an opaque
/// blob each way, shaped as a get's: the key is the request, the value the reply)
pub const OP_REPLICATE: u8 = 18;
/// ours too: a duplication's Apply to a follower cluster (shaped as OP_REPLICATE)
pub const OP_DUP_APPLY: u8 = 19;

/// RPC name -> operation (codes.RPC_OPS).
pub const RPC_OPS: [(&str, u8); 18] = [
    ("RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX", OP_QUERY_CFG),
    ("RPC_RRDB_RRDB_PUT", OP_PUT),
    ("RPC_RRDB_RRDB_MULTI_PUT", OP_MULTI_PUT),
    ("RPC_RRDB_RRDB_REMOVE", OP_REMOVE),
    ("RPC_RRDB_RRDB_MULTI_REMOVE", OP_MULTI_REMOVE),
    ("RPC_RRDB_RRDB_GET", OP_GET),
    ("RPC_RRDB_RRDB_MULTI_GET", OP_MULTI_GET),
    ("RPC_RRDB_RRDB_SORTKEY_COUNT", OP_SORTKEY_COUNT),
    ("RPC_RRDB_RRDB_TTL", OP_TTL),
    ("RPC_RRDB_RRDB_INCR", OP_INCR),
    ("RPC_RRDB_RRDB_CHECK_AND_SET", OP_CHECK_AND_SET),
    ("RPC_RRDB_RRDB_CHECK_AND_MUTATE", OP_CHECK_AND_MUTATE),
    ("RPC_RRDB_RRDB_BATCH_GET", OP_BATCH_GET),
    ("RPC_RRDB_RRDB_GET_SCANNER", OP_GET_SCANNER),
    ("RPC_RRDB_RRDB_SCAN", OP_SCAN),
    ("RPC_RRDB_RRDB_CLEAR_SCANNER", OP_CLEAR_SCANNER),
    ("RPC_PF_NODE_REPLICATE", OP_REPLICATE),
    ("RPC_PF_DUP_APPLY", OP_DUP_APPLY),
];

pub fn op_of(name: &str) -> u8 {
    RPC_OPS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(OP_UNKNOWN, |(_, op)| *op)
}

pub fn name_of(op: u8) -> Option<&'static str> {
    RPC_OPS.iter().find(|(_, o)| *o == op).map(|(n, _)| *n)
}

pub const ERR_OK: &str = "ERR_OK";
pub const ERR_UNKNOWN: &str = "ERR_UNKNOWN";
const ACK: &str = "_ACK";
const MAX_RPC_NAME: usize = 47;

// -- frames (frame.py) -------------------------------------------------------------

pub const MAGIC: &[u8; 4] = b"THFT";
pub const PREFIX: usize = 8;
pub const HEADER_V0: usize = 48;
pub const HEADER_V1: usize = 16;
pub const DEFAULT_MAX_FRAME: u64 = (64 << 20) + (1 << 20);

/// The fixed header's length given its first [`PREFIX`] bytes.
pub fn header_length(prefix: &[u8], base: u64) -> PResult<usize> {
    if &prefix[..4] != MAGIC {
        return Err(ProtocolError::new(
            base,
            format!(
                "frame does not start with 'THFT' but {}",
                py_bytes_repr(&prefix[..4])
            ),
        ));
    }
    match u32::from_be_bytes(prefix[4..8].try_into().unwrap()) {
        0 => Ok(HEADER_V0),
        1 => Ok(HEADER_V1),
        v => Err(ProtocolError::new(
            base + 4,
            format!("unknown header version {v}"),
        )),
    }
}

/// What a whole fixed header announces: `(meta length, body length, app id, partition index)`.
pub fn parse_header(hdr: &[u8], base: u64, max_frame: u64) -> PResult<(u64, u64, i32, i32)> {
    let n = header_length(hdr, base)?;
    if hdr.len() != n {
        return Err(ProtocolError::new(
            base,
            format!("header is {} bytes, version needs {n}", hdr.len()),
        ));
    }
    let u32_at = |i: usize| u32::from_be_bytes(hdr[i..i + 4].try_into().unwrap());
    if n == HEADER_V0 {
        let hdr_len = u32_at(8);
        if hdr_len != HEADER_V0 as u32 {
            return Err(ProtocolError::new(
                base + 8,
                format!("v0 header length field is {hdr_len}, not 48"),
            ));
        }
        let body_len = u64::from(u32_at(16));
        if body_len > max_frame {
            return Err(too_large(base + 16, body_len, max_frame));
        }
        return Ok((0, body_len, u32_at(24) as i32, u32_at(28) as i32));
    }
    let meta_len = u64::from(u32_at(8));
    let body_len = u64::from(u32_at(12));
    if meta_len > max_frame {
        return Err(too_large(base + 8, meta_len, max_frame));
    }
    if meta_len + body_len > max_frame {
        return Err(too_large(base + 12, meta_len + body_len, max_frame));
    }
    Ok((meta_len, body_len, 0, 0))
}

fn too_large(offset: u64, length: u64, limit: u64) -> ProtocolError {
    ProtocolError::new(
        offset,
        format!("frame of {length} bytes; the limit is {limit}"),
    )
}

/// `(app_id, partition_index)` of a v1 header's `request_meta` struct.
pub fn decode_meta(meta: &[u8], base: u64) -> PResult<(i32, i32)> {
    let mut r = Reader::new(meta, base);
    let (mut app_id, mut pidx) = (0, 0);
    loop {
        let (ftype, fid) = r.field()?;
        if ftype == T_STOP {
            break;
        }
        if fid == 1 && ftype == T_I32 {
            app_id = r.i32("app_id")?;
        } else if fid == 2 && ftype == T_I32 {
            pidx = r.i32("partition_index")?;
        } else {
            r.skip(ftype, 0)?;
        }
    }
    if r.pos != r.end() {
        return Err(r.fail(format!("{} bytes after the request meta", r.end() - r.pos)));
    }
    Ok((app_id, pidx))
}

/// A v0 request header (what pypegasus3 sends).
pub fn encode_v0_header(body_len: usize, app_id: i32, pidx: i32) -> [u8; HEADER_V0] {
    let mut h = [0u8; HEADER_V0];
    h[..4].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&(HEADER_V0 as u32).to_be_bytes());
    h[16..20].copy_from_slice(&(body_len as u32).to_be_bytes());
    h[24..28].copy_from_slice(&app_id.to_be_bytes());
    h[28..32].copy_from_slice(&pidx.to_be_bytes());
    let thread_hash = app_id.wrapping_mul(7919).wrapping_add(pidx);
    h[36..40].copy_from_slice(&thread_hash.to_be_bytes());
    h
}

/// Python's `repr(bytes)`, for the reasons that quote bytes.
fn py_bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = String::from("b");
    s.push(quote);
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if c as char == quote => {
                s.push('\\');
                s.push(quote)
            }
            0x20..=0x7e => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push(quote);
    s
}

// -- compact requests (requests.py) ------------------------------------------------

/// multi_get's arguments (rrdb.thrift multi_get_request), in field order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiGet {
    pub hash_key: Vec<u8>,
    pub sort_keys: Vec<Vec<u8>>,
    pub max_kv_count: i32,
    pub max_kv_size: i32,
    pub no_value: bool,
    pub start_sort_key: Vec<u8>,
    pub stop_sort_key: Vec<u8>,
    pub start_inclusive: bool,
    pub stop_inclusive: bool,
    pub filter_type: i32,
    pub filter_pattern: Vec<u8>,
    pub reverse: bool,
}

/// check_and_set's arguments (rrdb.thrift check_and_set_request), in field order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckAndSet {
    pub hash_key: Vec<u8>,
    pub check_sort_key: Vec<u8>,
    pub check_type: i32,
    pub check_operand: Vec<u8>,
    pub set_diff_sort_key: bool,
    pub set_sort_key: Vec<u8>,
    pub set_value: Vec<u8>,
    pub expire_ts: i32,
    pub return_check_value: bool,
}

/// One mutation of check_and_mutate: (operation, sort key, value, expire_ts).
pub type Mutate = (i32, Vec<u8>, Vec<u8>, i32);

/// check_and_mutate's arguments, in field order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckAndMutate {
    pub hash_key: Vec<u8>,
    pub check_sort_key: Vec<u8>,
    pub check_type: i32,
    pub check_operand: Vec<u8>,
    pub mutations: Vec<Mutate>,
    pub return_check_value: bool,
}

/// get_scanner's arguments (rrdb.thrift get_scanner_request), in field order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetScanner {
    pub start_key: Vec<u8>,
    pub stop_key: Vec<u8>,
    pub start_inclusive: bool,
    pub stop_inclusive: bool,
    pub batch_size: i32,
    pub no_value: bool,
    pub hash_key_filter_type: i32,
    pub hash_key_filter_pattern: Vec<u8>,
    pub sort_key_filter_type: i32,
    pub sort_key_filter_pattern: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// unknown RPCs
    Empty,
    QueryCfg(String, Vec<i32>),
    Put(Vec<u8>, Vec<u8>, i32),
    MultiPut(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>, i32),
    /// remove, get, ttl, sortkey_count
    Key(Vec<u8>),
    MultiRemove(Vec<u8>, Vec<Vec<u8>>),
    MultiGet(Box<MultiGet>),
    /// (key, increment, expire_ts)
    Incr(Vec<u8>, i64, i32),
    CheckAndSet(Box<CheckAndSet>),
    CheckAndMutate(Box<CheckAndMutate>),
    /// [(hash key, sort key)]
    BatchGet(Vec<(Vec<u8>, Vec<u8>)>),
    GetScanner(Box<GetScanner>),
    /// scan, clear_scanner
    ContextId(i64),
    /// a known RPC whose arguments did not decode
    Bad(ProtocolError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: u8,
    pub seqid: i32,
    pub app_id: i32,
    pub pidx: i32,
    pub name: String,
    pub args: Args,
}

/// The compact request of one frame's body. A body whose message is not a call is an
/// error (the connection cannot be trusted); arguments that do not decode are `OP_BAD_REQUEST`.
pub fn decode_request(body: &[u8], app_id: i32, pidx: i32, base: u64) -> PResult<Request> {
    let mut r = Reader::new(body, base);
    let (name, mtype, seqid) = r.message_begin()?;
    if mtype != i32::from(T_CALL) && mtype != i32::from(T_ONEWAY) {
        return Err(ProtocolError::new(
            base,
            format!("message type {mtype} is not a call"),
        ));
    }
    let op = op_of(&name);
    let mut req = Request {
        op,
        seqid,
        app_id,
        pidx,
        name,
        args: Args::Empty,
    };
    if op == OP_UNKNOWN {
        return Ok(req);
    }
    let decoded = decode_args(&mut r, op).and_then(|args| {
        if r.pos != r.end() {
            Err(r.fail(format!("{} bytes after the arguments", r.end() - r.pos)))
        } else {
            Ok(args)
        }
    });
    match decoded {
        Ok(args) => req.args = args,
        Err(e) => {
            req.op = OP_BAD_REQUEST;
            req.args = Args::Bad(e);
        }
    }
    Ok(req)
}

fn is_blob(t: i8) -> bool {
    t == T_STRUCT || t == T_STRING
}

fn blob(r: &mut Reader<'_>) -> PResult<Vec<u8>> {
    Ok(r.binary("blob")?.to_vec())
}

fn blob_list(r: &mut Reader<'_>) -> PResult<Vec<Vec<u8>>> {
    let (etype, n) = r.collection("list of blobs")?;
    if !is_blob(etype) {
        return Err(r.fail(format!("list of blobs has element type {etype}")));
    }
    (0..n).map(|_| blob(r)).collect()
}

/// The args struct of every rrdb RPC: field 1 (of an accepted type) is read by `read`.
fn one_arg<T>(
    r: &mut Reader<'_>,
    accept: fn(i8) -> bool,
    mut read: impl FnMut(&mut Reader<'_>) -> PResult<T>,
    default: T,
) -> PResult<T> {
    let mut value = default;
    loop {
        let (ftype, fid) = r.field()?;
        if ftype == T_STOP {
            return Ok(value);
        }
        if fid == 1 && accept(ftype) {
            value = read(r)?;
        } else {
            r.skip(ftype, 0)?;
        }
    }
}

/// A struct's fields: `visit(r, fid, ftype)` reads a field it knows and returns true.
fn fields(
    r: &mut Reader<'_>,
    mut visit: impl FnMut(&mut Reader<'_>, i16, i8) -> PResult<bool>,
) -> PResult<()> {
    loop {
        let (ftype, fid) = r.field()?;
        if ftype == T_STOP {
            return Ok(());
        }
        if !visit(r, fid, ftype)? {
            r.skip(ftype, 0)?;
        }
    }
}

fn is_struct(t: i8) -> bool {
    t == T_STRUCT
}

fn decode_args(r: &mut Reader<'_>, op: u8) -> PResult<Args> {
    match op {
        OP_QUERY_CFG => {
            let request = |r: &mut Reader<'_>| {
                let (mut app_name, mut idx) = (String::new(), Vec::new());
                fields(r, |r, fid, t| match (fid, t) {
                    (1, T_STRING) => {
                        app_name = r.string("app_name")?;
                        Ok(true)
                    }
                    (2, T_LIST) => {
                        let (etype, n) = r.collection("partition_indices")?;
                        if etype != T_I32 {
                            return Err(
                                r.fail(format!("partition_indices has element type {etype}"))
                            );
                        }
                        idx = (0..n).map(|_| r.i32("i32")).collect::<PResult<_>>()?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })?;
                Ok((app_name, idx))
            };
            let (name, idx) = one_arg(r, is_struct, request, (String::new(), Vec::new()))?;
            Ok(Args::QueryCfg(name, idx))
        }
        OP_PUT => {
            let request = |r: &mut Reader<'_>| {
                let (mut k, mut v, mut e) = (Vec::new(), Vec::new(), 0);
                fields(r, |r, fid, t| match (fid, t) {
                    (1, t) if is_blob(t) => {
                        k = blob(r)?;
                        Ok(true)
                    }
                    (2, t) if is_blob(t) => {
                        v = blob(r)?;
                        Ok(true)
                    }
                    (3, T_I32) => {
                        e = r.i32("i32")?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })?;
                Ok((k, v, e))
            };
            let (k, v, e) = one_arg(r, is_struct, request, (Vec::new(), Vec::new(), 0))?;
            Ok(Args::Put(k, v, e))
        }
        OP_MULTI_PUT => {
            let request = |r: &mut Reader<'_>| {
                let (mut hk, mut kvs, mut e) = (Vec::new(), Vec::new(), 0);
                fields(r, |r, fid, t| match (fid, t) {
                    (1, t) if is_blob(t) => {
                        hk = blob(r)?;
                        Ok(true)
                    }
                    (2, T_LIST) => {
                        let (etype, n) = r.collection("kvs")?;
                        if etype != T_STRUCT {
                            return Err(r.fail(format!("kvs has element type {etype}")));
                        }
                        kvs = (0..n).map(|_| key_value(r)).collect::<PResult<_>>()?;
                        Ok(true)
                    }
                    (3, T_I32) => {
                        e = r.i32("i32")?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })?;
                Ok((hk, kvs, e))
            };
            let (hk, kvs, e) = one_arg(r, is_struct, request, (Vec::new(), Vec::new(), 0))?;
            Ok(Args::MultiPut(hk, kvs, e))
        }
        OP_REMOVE | OP_GET | OP_SORTKEY_COUNT | OP_TTL | OP_REPLICATE | OP_DUP_APPLY => {
            Ok(Args::Key(one_arg(r, is_blob, blob, Vec::new())?))
        }
        OP_MULTI_REMOVE => {
            let request = |r: &mut Reader<'_>| {
                let (mut hk, mut sks) = (Vec::new(), Vec::new());
                fields(r, |r, fid, t| match (fid, t) {
                    (1, t) if is_blob(t) => {
                        hk = blob(r)?;
                        Ok(true)
                    }
                    (2, T_LIST) => {
                        sks = blob_list(r)?;
                        Ok(true)
                    }
                    (3, T_I64) => {
                        r.i64("i64")?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })?;
                Ok((hk, sks))
            };
            let (hk, sks) = one_arg(r, is_struct, request, (Vec::new(), Vec::new()))?;
            Ok(Args::MultiRemove(hk, sks))
        }
        OP_MULTI_GET => {
            let request = |r: &mut Reader<'_>| {
                let mut m = MultiGet::default();
                fields(r, |r, fid, t| {
                    match (fid, t) {
                        (1, t) if is_blob(t) => m.hash_key = blob(r)?,
                        (2, T_LIST) => m.sort_keys = blob_list(r)?,
                        (3, T_I32) => m.max_kv_count = r.i32("i32")?,
                        (4, T_I32) => m.max_kv_size = r.i32("i32")?,
                        (5, T_BOOL) => m.no_value = r.bool("bool")?,
                        (6, t) if is_blob(t) => m.start_sort_key = blob(r)?,
                        (7, t) if is_blob(t) => m.stop_sort_key = blob(r)?,
                        (8, T_BOOL) => m.start_inclusive = r.bool("bool")?,
                        (9, T_BOOL) => m.stop_inclusive = r.bool("bool")?,
                        (10, T_I32) => m.filter_type = r.i32("i32")?,
                        (11, t) if is_blob(t) => m.filter_pattern = blob(r)?,
                        (12, T_BOOL) => m.reverse = r.bool("bool")?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                Ok(m)
            };
            let m = one_arg(r, is_struct, request, MultiGet::default())?;
            Ok(Args::MultiGet(Box::new(m)))
        }
        OP_INCR => {
            let request = |r: &mut Reader<'_>| {
                let (mut k, mut inc, mut e) = (Vec::new(), 0, 0);
                fields(r, |r, fid, t| {
                    match (fid, t) {
                        (1, t) if is_blob(t) => k = blob(r)?,
                        (2, T_I64) => inc = r.i64("i64")?,
                        (3, T_I32) => e = r.i32("i32")?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                Ok((k, inc, e))
            };
            let (k, inc, e) = one_arg(r, is_struct, request, (Vec::new(), 0, 0))?;
            Ok(Args::Incr(k, inc, e))
        }
        OP_CHECK_AND_SET => {
            let request = |r: &mut Reader<'_>| {
                let mut c = CheckAndSet::default();
                fields(r, |r, fid, t| {
                    match (fid, t) {
                        (1, t) if is_blob(t) => c.hash_key = blob(r)?,
                        (2, t) if is_blob(t) => c.check_sort_key = blob(r)?,
                        (3, T_I32) => c.check_type = r.i32("i32")?,
                        (4, t) if is_blob(t) => c.check_operand = blob(r)?,
                        (5, T_BOOL) => c.set_diff_sort_key = r.bool("bool")?,
                        (6, t) if is_blob(t) => c.set_sort_key = blob(r)?,
                        (7, t) if is_blob(t) => c.set_value = blob(r)?,
                        (8, T_I32) => c.expire_ts = r.i32("i32")?,
                        (9, T_BOOL) => c.return_check_value = r.bool("bool")?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                Ok(c)
            };
            let c = one_arg(r, is_struct, request, CheckAndSet::default())?;
            Ok(Args::CheckAndSet(Box::new(c)))
        }
        OP_CHECK_AND_MUTATE => {
            let request = |r: &mut Reader<'_>| {
                let mut c = CheckAndMutate::default();
                fields(r, |r, fid, t| {
                    match (fid, t) {
                        (1, t) if is_blob(t) => c.hash_key = blob(r)?,
                        (2, t) if is_blob(t) => c.check_sort_key = blob(r)?,
                        (3, T_I32) => c.check_type = r.i32("i32")?,
                        (4, t) if is_blob(t) => c.check_operand = blob(r)?,
                        (5, T_LIST) => {
                            let (etype, n) = r.collection("mutate_list")?;
                            if etype != T_STRUCT {
                                return Err(r.fail(format!("mutate_list has element type {etype}")));
                            }
                            c.mutations = (0..n).map(|_| mutate(r)).collect::<PResult<_>>()?;
                        }
                        (6, T_BOOL) => c.return_check_value = r.bool("bool")?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                Ok(c)
            };
            let c = one_arg(r, is_struct, request, CheckAndMutate::default())?;
            Ok(Args::CheckAndMutate(Box::new(c)))
        }
        OP_BATCH_GET => {
            let request = |r: &mut Reader<'_>| {
                let mut keys = Vec::new();
                fields(r, |r, fid, t| match (fid, t) {
                    (1, T_LIST) => {
                        let (etype, n) = r.collection("keys")?;
                        if etype != T_STRUCT {
                            return Err(r.fail(format!("keys has element type {etype}")));
                        }
                        keys = (0..n).map(|_| key_value(r)).collect::<PResult<_>>()?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })?;
                Ok(keys)
            };
            Ok(Args::BatchGet(one_arg(r, is_struct, request, Vec::new())?))
        }
        OP_GET_SCANNER => {
            let request = |r: &mut Reader<'_>| {
                let mut g = GetScanner::default();
                fields(r, |r, fid, t| {
                    match (fid, t) {
                        (1, t) if is_blob(t) => g.start_key = blob(r)?,
                        (2, t) if is_blob(t) => g.stop_key = blob(r)?,
                        (3, T_BOOL) => g.start_inclusive = r.bool("bool")?,
                        (4, T_BOOL) => g.stop_inclusive = r.bool("bool")?,
                        (5, T_I32) => g.batch_size = r.i32("i32")?,
                        (6, T_BOOL) => g.no_value = r.bool("bool")?,
                        (7, T_I32) => g.hash_key_filter_type = r.i32("i32")?,
                        (8, t) if is_blob(t) => g.hash_key_filter_pattern = blob(r)?,
                        (9, T_I32) => g.sort_key_filter_type = r.i32("i32")?,
                        (10, t) if is_blob(t) => g.sort_key_filter_pattern = blob(r)?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                Ok(g)
            };
            let g = one_arg(r, is_struct, request, GetScanner::default())?;
            Ok(Args::GetScanner(Box::new(g)))
        }
        OP_SCAN => {
            let request = |r: &mut Reader<'_>| {
                let mut id = 0;
                fields(r, |r, fid, t| match (fid, t) {
                    (1, T_I64) => {
                        id = r.i64("i64")?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })?;
                Ok(id)
            };
            Ok(Args::ContextId(one_arg(r, is_struct, request, 0)?))
        }
        OP_CLEAR_SCANNER => {
            let is_i64 = |t: i8| t == T_I64;
            Ok(Args::ContextId(one_arg(r, is_i64, |r| r.i64("i64"), 0)?))
        }
        _ => {
            r.skip(T_STRUCT, 0)?;
            Ok(Args::Empty)
        }
    }
}

fn mutate(r: &mut Reader<'_>) -> PResult<Mutate> {
    let mut m: Mutate = (0, Vec::new(), Vec::new(), 0);
    fields(r, |r, fid, t| {
        match (fid, t) {
            (1, T_I32) => m.0 = r.i32("i32")?,
            (2, t) if is_blob(t) => m.1 = blob(r)?,
            (3, t) if is_blob(t) => m.2 = blob(r)?,
            (4, T_I32) => m.3 = r.i32("i32")?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(m)
}

fn key_value(r: &mut Reader<'_>) -> PResult<(Vec<u8>, Vec<u8>)> {
    let (mut sk, mut v) = (Vec::new(), Vec::new());
    fields(r, |r, fid, t| match (fid, t) {
        (1, t) if is_blob(t) => {
            sk = blob(r)?;
            Ok(true)
        }
        (2, t) if is_blob(t) => {
            v = blob(r)?;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok((sk, v))
}

/// The body of a call (the client's side): the twin of requests.encode_request.
pub fn encode_request(op: u8, name: &str, seqid: i32, args: &Args) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let mtype = if op == OP_CLEAR_SCANNER {
        T_ONEWAY
    } else {
        T_CALL
    };
    put_message_begin(&mut out, name.as_bytes(), mtype, seqid);
    match args {
        Args::QueryCfg(app, idx) => {
            put_field(&mut out, T_STRUCT, 1);
            put_string(&mut out, 1, app.as_bytes());
            put_list_begin(&mut out, 2, T_I32, idx.len());
            for i in idx {
                out.extend_from_slice(&i.to_be_bytes());
            }
            put_stop(&mut out);
        }
        Args::Put(k, v, e) => {
            put_field(&mut out, T_STRUCT, 1);
            put_blob(&mut out, 1, k);
            put_blob(&mut out, 2, v);
            put_i32(&mut out, 3, *e);
            put_stop(&mut out);
        }
        Args::MultiPut(hk, kvs, e) => {
            put_field(&mut out, T_STRUCT, 1);
            put_blob(&mut out, 1, hk);
            put_list_begin(&mut out, 2, T_STRUCT, kvs.len());
            for (k, v) in kvs {
                put_blob(&mut out, 1, k);
                put_blob(&mut out, 2, v);
                put_stop(&mut out);
            }
            put_i32(&mut out, 3, *e);
            put_stop(&mut out);
        }
        Args::Key(k) => put_blob(&mut out, 1, k),
        Args::MultiRemove(hk, sks) => {
            put_field(&mut out, T_STRUCT, 1);
            put_blob(&mut out, 1, hk);
            put_blob_list(&mut out, 2, sks);
            put_i64(&mut out, 3, 0);
            put_stop(&mut out);
        }
        Args::MultiGet(m) => {
            put_field(&mut out, T_STRUCT, 1);
            put_blob(&mut out, 1, &m.hash_key);
            put_blob_list(&mut out, 2, &m.sort_keys);
            put_i32(&mut out, 3, m.max_kv_count);
            put_i32(&mut out, 4, m.max_kv_size);
            put_bool(&mut out, 5, m.no_value);
            put_blob(&mut out, 6, &m.start_sort_key);
            put_blob(&mut out, 7, &m.stop_sort_key);
            put_bool(&mut out, 8, m.start_inclusive);
            put_bool(&mut out, 9, m.stop_inclusive);
            put_i32(&mut out, 10, m.filter_type);
            put_blob(&mut out, 11, &m.filter_pattern);
            put_bool(&mut out, 12, m.reverse);
            put_stop(&mut out);
        }
        Args::Incr(k, inc, e) => {
            put_field(&mut out, T_STRUCT, 1);
            put_blob(&mut out, 1, k);
            put_i64(&mut out, 2, *inc);
            put_i32(&mut out, 3, *e);
            put_stop(&mut out);
        }
        Args::CheckAndSet(c) => {
            put_field(&mut out, T_STRUCT, 1);
            put_blob(&mut out, 1, &c.hash_key);
            put_blob(&mut out, 2, &c.check_sort_key);
            put_i32(&mut out, 3, c.check_type);
            put_blob(&mut out, 4, &c.check_operand);
            put_bool(&mut out, 5, c.set_diff_sort_key);
            put_blob(&mut out, 6, &c.set_sort_key);
            put_blob(&mut out, 7, &c.set_value);
            put_i32(&mut out, 8, c.expire_ts);
            put_bool(&mut out, 9, c.return_check_value);
            put_stop(&mut out);
        }
        Args::CheckAndMutate(c) => {
            put_field(&mut out, T_STRUCT, 1);
            put_blob(&mut out, 1, &c.hash_key);
            put_blob(&mut out, 2, &c.check_sort_key);
            put_i32(&mut out, 3, c.check_type);
            put_blob(&mut out, 4, &c.check_operand);
            put_list_begin(&mut out, 5, T_STRUCT, c.mutations.len());
            for (op, sk, v, e) in &c.mutations {
                put_i32(&mut out, 1, *op);
                put_blob(&mut out, 2, sk);
                put_blob(&mut out, 3, v);
                put_i32(&mut out, 4, *e);
                put_stop(&mut out);
            }
            put_bool(&mut out, 6, c.return_check_value);
            put_stop(&mut out);
        }
        Args::BatchGet(keys) => {
            put_field(&mut out, T_STRUCT, 1);
            put_list_begin(&mut out, 1, T_STRUCT, keys.len());
            for (hk, sk) in keys {
                put_blob(&mut out, 1, hk);
                put_blob(&mut out, 2, sk);
                put_stop(&mut out);
            }
            put_stop(&mut out);
        }
        Args::GetScanner(g) => {
            put_field(&mut out, T_STRUCT, 1);
            put_blob(&mut out, 1, &g.start_key);
            put_blob(&mut out, 2, &g.stop_key);
            put_bool(&mut out, 3, g.start_inclusive);
            put_bool(&mut out, 4, g.stop_inclusive);
            put_i32(&mut out, 5, g.batch_size);
            put_bool(&mut out, 6, g.no_value);
            put_i32(&mut out, 7, g.hash_key_filter_type);
            put_blob(&mut out, 8, &g.hash_key_filter_pattern);
            put_i32(&mut out, 9, g.sort_key_filter_type);
            put_blob(&mut out, 10, &g.sort_key_filter_pattern);
            put_stop(&mut out);
        }
        Args::ContextId(id) if op == OP_CLEAR_SCANNER => put_i64(&mut out, 1, *id),
        Args::ContextId(id) => {
            put_field(&mut out, T_STRUCT, 1);
            put_i64(&mut out, 1, *id);
            put_stop(&mut out);
        }
        Args::Empty | Args::Bad(_) => {}
    }
    put_stop(&mut out);
    out
}

fn put_blob_list(out: &mut Vec<u8>, fid: i16, items: &[Vec<u8>]) {
    put_list_begin(out, fid, T_STRUCT, items.len());
    for it in items {
        put_binary_value(out, it);
    }
}

// -- compact responses (replies.py) ------------------------------------------------

/// A response's result: what the handler answered (`None` unless the error is ERR_OK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    None,
    /// (err name, app id, partition count, [(pidx, ballot, last committed)])
    /// err, app id, partition count, per partition (pidx, ballot, last committed decree, its
    /// primary: None for the address the client reached, Some(rpc_address) on a multi-node
    /// cluster's node, where each partition names its owner; Some(0) is no primary)
    QueryCfg(String, i32, i32, Vec<(i32, i64, i64, Option<i64>)>),
    /// put, multi_put, remove: (status, decree)
    Update(i32, i64),
    /// (status, count, decree)
    MultiRemove(i32, i64, i64),
    /// get: (status, value)
    Read(i32, Vec<u8>),
    MultiGet(i32, Vec<(Vec<u8>, Vec<u8>)>),
    Count(i32, i64),
    Ttl(i32, i32),
    /// (status, new value, decree)
    Incr(i32, i64, i64),
    /// check_and_set, check_and_mutate: (status, check value returned, check value exists,
    /// check value, decree)
    CheckAnd(i32, bool, bool, Vec<u8>, i64),
    /// (status, [(hash key, sort key, value)])
    BatchGet(i32, Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>),
    /// get_scanner, scan: (status, [(key, value)], context id)
    Scan(i32, Vec<(Vec<u8>, Vec<u8>)>, i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub op: u8,
    pub seqid: i32,
    pub app_id: i32,
    pub pidx: i32,
    pub name: String,
    pub error: String,
    pub result: Outcome,
}

pub fn reply_name(name: &str) -> Vec<u8> {
    let mut n = format!("{name}{ACK}").into_bytes();
    n.truncate(MAX_RPC_NAME);
    n
}

pub fn gpid(app_id: i32, pidx: i32) -> i64 {
    ((u64::from(pidx as u32) << 32) | u64::from(app_id as u32)) as i64
}

/// An rDSN rpc_address of an IPv4 address and port, as its i64.
pub fn rpc_address(ip: std::net::Ipv4Addr, port: u16) -> i64 {
    ((u64::from(u32::from(ip)) << 32) | (u64::from(port) << 16) | 1) as i64
}

/// One reply frame appended to `out`, or nothing for a oneway RPC (clear_scanner).
/// `server` is this node's `host:port`, `primary` the same as an rpc_address.
/// An ERR_OK response whose result does not fit its RPC is answered ERR_UNKNOWN.
pub fn encode_response(resp: &Response, server: &[u8], primary: i64, out: &mut Vec<u8>) {
    if resp.op == OP_CLEAR_SCANNER {
        return;
    }
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let ok = resp.error == ERR_OK;
    let error = if ok && !result_fits(resp.op, &resp.result) {
        ERR_UNKNOWN
    } else {
        resp.error.as_str()
    };
    put_binary_value(out, error.as_bytes());
    put_message_begin(out, &reply_name(&resp.name), T_REPLY, resp.seqid);
    if error == ERR_OK {
        put_field(out, T_STRUCT, 0);
        encode_result(out, resp, server, primary);
        put_stop(out);
    }
    let n = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&n.to_be_bytes());
}

fn result_fits(op: u8, r: &Outcome) -> bool {
    matches!(
        (op, r),
        (OP_QUERY_CFG, Outcome::QueryCfg(..))
            | (OP_PUT | OP_MULTI_PUT | OP_REMOVE, Outcome::Update(..))
            | (OP_MULTI_REMOVE, Outcome::MultiRemove(..))
            | (OP_GET | OP_REPLICATE | OP_DUP_APPLY, Outcome::Read(..))
            | (OP_MULTI_GET, Outcome::MultiGet(..))
            | (OP_SORTKEY_COUNT, Outcome::Count(..))
            | (OP_TTL, Outcome::Ttl(..))
            | (OP_INCR, Outcome::Incr(..))
            | (
                OP_CHECK_AND_SET | OP_CHECK_AND_MUTATE,
                Outcome::CheckAnd(..)
            )
            | (OP_BATCH_GET, Outcome::BatchGet(..))
            | (OP_GET_SCANNER | OP_SCAN, Outcome::Scan(..))
    )
}

fn tail(out: &mut Vec<u8>, app_id: i32, pidx: i32, server: &[u8], first: i16) {
    put_i32(out, first, app_id);
    put_i32(out, first + 1, pidx);
    put_string(out, 6, server);
    put_stop(out);
}

fn encode_result(out: &mut Vec<u8>, resp: &Response, server: &[u8], primary: i64) {
    let (app_id, pidx) = (resp.app_id, resp.pidx);
    match &resp.result {
        Outcome::QueryCfg(err, qapp, count, parts) => {
            put_field(out, T_STRUCT, 1);
            put_binary_value(out, err.as_bytes());
            put_i32(out, 2, *qapp);
            put_i32(out, 3, *count);
            put_bool(out, 4, err == ERR_OK);
            put_list_begin(out, 5, T_STRUCT, parts.len());
            for (p, ballot, last, own) in parts {
                put_field(out, T_STRUCT, 1);
                out.extend_from_slice(&gpid(*qapp, *p).to_be_bytes());
                put_i64(out, 2, *ballot);
                put_i32(out, 3, 1);
                put_field(out, T_STRUCT, 4);
                out.extend_from_slice(&own.unwrap_or(primary).to_be_bytes());
                put_list_begin(out, 5, T_STRUCT, 0);
                put_list_begin(out, 6, T_STRUCT, 0);
                put_i64(out, 7, *last);
                put_i32(out, 8, 0);
                put_stop(out);
            }
            put_stop(out);
        }
        Outcome::Update(status, decree) => {
            put_i32(out, 1, *status);
            put_i32(out, 2, app_id);
            put_i32(out, 3, pidx);
            put_i64(out, 4, *decree);
            put_string(out, 5, server);
            put_stop(out);
        }
        Outcome::MultiRemove(status, count, decree) => {
            put_i32(out, 1, *status);
            put_i64(out, 2, *count);
            put_i32(out, 3, app_id);
            put_i32(out, 4, pidx);
            put_i64(out, 5, *decree);
            put_string(out, 6, server);
            put_stop(out);
        }
        Outcome::Read(status, value) => {
            put_i32(out, 1, *status);
            put_blob(out, 2, value);
            tail(out, app_id, pidx, server, 3);
        }
        Outcome::MultiGet(status, kvs) => {
            put_i32(out, 1, *status);
            put_list_begin(out, 2, T_STRUCT, kvs.len());
            for (k, v) in kvs {
                put_blob(out, 1, k);
                put_blob(out, 2, v);
                put_stop(out);
            }
            tail(out, app_id, pidx, server, 3);
        }
        Outcome::Count(status, count) => {
            put_i32(out, 1, *status);
            put_i64(out, 2, *count);
            tail(out, app_id, pidx, server, 3);
        }
        Outcome::Ttl(status, ttl) => {
            put_i32(out, 1, *status);
            put_i32(out, 2, *ttl);
            tail(out, app_id, pidx, server, 3);
        }
        Outcome::Incr(status, new_value, decree) => {
            put_i32(out, 1, *status);
            put_i64(out, 2, *new_value);
            put_i32(out, 3, app_id);
            put_i32(out, 4, pidx);
            put_i64(out, 5, *decree);
            put_string(out, 6, server);
            put_stop(out);
        }
        Outcome::CheckAnd(status, returned, exists, value, decree) => {
            put_i32(out, 1, *status);
            put_bool(out, 2, *returned);
            put_bool(out, 3, *exists);
            put_blob(out, 4, value);
            put_i32(out, 5, app_id);
            put_i32(out, 6, pidx);
            put_i64(out, 7, *decree);
            put_string(out, 8, server);
            put_stop(out);
        }
        Outcome::BatchGet(status, data) => {
            put_i32(out, 1, *status);
            put_list_begin(out, 2, T_STRUCT, data.len());
            for (hk, sk, v) in data {
                put_blob(out, 1, hk);
                put_blob(out, 2, sk);
                put_blob(out, 3, v);
                put_stop(out);
            }
            tail(out, app_id, pidx, server, 3);
        }
        Outcome::Scan(status, kvs, context_id) => {
            put_i32(out, 1, *status);
            put_list_begin(out, 2, T_STRUCT, kvs.len());
            for (k, v) in kvs {
                put_blob(out, 1, k);
                put_blob(out, 2, v);
                put_stop(out);
            }
            put_i64(out, 3, *context_id);
            tail(out, app_id, pidx, server, 4);
        }
        Outcome::None => {}
    }
}

/// A reply frame's content (after its 4-byte length), the client's side: the twin of
/// replies.decode_response. `(error, name, seqid, result)`; the result is `Outcome::None`
/// unless the error is ERR_OK.
pub fn decode_reply(op: u8, data: &[u8]) -> PResult<(String, String, i32, Outcome)> {
    let mut r = Reader::new(data, 4);
    let error = r.string("error")?;
    let (name, mtype, seqid) = r.message_begin()?;
    if mtype != i32::from(T_REPLY) {
        return Err(r.fail(format!("message type {mtype} is not a reply")));
    }
    if error != ERR_OK {
        return Ok((error, name, seqid, Outcome::None));
    }
    let mut result = None;
    fields(&mut r, |r, fid, t| {
        if fid == 0 && t == T_STRUCT {
            result = Some(decode_result(r, op)?);
            Ok(true)
        } else {
            Ok(false)
        }
    })?;
    let result = result.ok_or_else(|| r.fail("the reply has no result"))?;
    Ok((error, name, seqid, result))
}

#[derive(Default)]
struct Fields {
    status: i32,
    i64s: [i64; 8],
    i32s: [i32; 8],
    blob: Vec<u8>,
    bools: [bool; 4],
    kvs: Vec<(Vec<u8>, Vec<u8>)>,
    data: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    err: String,
    parts: Vec<(i32, i64, i64, Option<i64>)>,
}

fn decode_result(r: &mut Reader<'_>, op: u8) -> PResult<Outcome> {
    let mut f = Fields::default();
    fields(r, |r, fid, t| {
        match (op, fid, t) {
            (OP_QUERY_CFG, 1, T_STRUCT) => f.err = r.string("err")?,
            (OP_QUERY_CFG, 5, T_LIST) => {
                let (_, n) = r.collection("partitions")?;
                for _ in 0..n {
                    let mut part = (0i32, 0i64, 0i64, None);
                    fields(r, |r, fid, t| {
                        match (fid, t) {
                            (1, T_STRUCT) => part.0 = (r.i64("pid")? >> 32) as i32,
                            (2, T_I64) => part.1 = r.i64("ballot")?,
                            // an rpc_address: an i64 marked T_STRUCT
                            (4, T_STRUCT) => part.3 = Some(r.i64("primary")?),
                            (7, T_I64) => part.2 = r.i64("last_committed")?,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    f.parts.push(part);
                }
            }
            (op, 1, T_I32) if op != OP_QUERY_CFG => f.status = r.i32("status")?,
            (OP_MULTI_GET | OP_GET_SCANNER | OP_SCAN, 2, T_LIST) => {
                let (_, n) = r.collection("kvs")?;
                for _ in 0..n {
                    f.kvs.push(key_value(r)?);
                }
            }
            (OP_BATCH_GET, 2, T_LIST) => {
                let (_, n) = r.collection("kvs")?;
                for _ in 0..n {
                    f.data.push(full_data(r)?);
                }
            }
            (_, 2 | 4, T_STRUCT) => f.blob = r.binary("value")?.to_vec(),
            (_, fid @ (2 | 3), T_BOOL) => f.bools[fid as usize] = r.bool("bool")?,
            (_, fid, T_I64) if (0..8).contains(&fid) => f.i64s[fid as usize] = r.i64("i64")?,
            (_, fid, T_I32) if (0..8).contains(&fid) => f.i32s[fid as usize] = r.i32("i32")?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(match op {
        OP_QUERY_CFG => Outcome::QueryCfg(f.err, f.i32s[2], f.i32s[3], f.parts),
        OP_PUT | OP_MULTI_PUT | OP_REMOVE => Outcome::Update(f.status, f.i64s[4]),
        OP_MULTI_REMOVE => Outcome::MultiRemove(f.status, f.i64s[2], f.i64s[5]),
        OP_GET | OP_REPLICATE | OP_DUP_APPLY => Outcome::Read(f.status, f.blob),
        OP_MULTI_GET => Outcome::MultiGet(f.status, f.kvs),
        OP_SORTKEY_COUNT => Outcome::Count(f.status, f.i64s[2]),
        OP_TTL => Outcome::Ttl(f.status, f.i32s[2]),
        OP_INCR => Outcome::Incr(f.status, f.i64s[2], f.i64s[5]),
        OP_CHECK_AND_SET | OP_CHECK_AND_MUTATE => {
            Outcome::CheckAnd(f.status, f.bools[2], f.bools[3], f.blob, f.i64s[7])
        }
        OP_BATCH_GET => Outcome::BatchGet(f.status, f.data),
        OP_GET_SCANNER | OP_SCAN => Outcome::Scan(f.status, f.kvs, f.i64s[3]),
        _ => Outcome::None,
    })
}

fn full_data(r: &mut Reader<'_>) -> PResult<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut d = (Vec::new(), Vec::new(), Vec::new());
    fields(r, |r, fid, t| {
        match (fid, t) {
            (1, t) if is_blob(t) => d.0 = blob(r)?,
            (2, t) if is_blob(t) => d.1 = blob(r)?,
            (3, t) if is_blob(t) => d.2 = blob(r)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> (Vec<u8>, i64) {
        (
            b"127.0.0.1:1".to_vec(),
            rpc_address(std::net::Ipv4Addr::LOCALHOST, 1),
        )
    }

    #[test]
    fn request_round_trip() {
        let args = [
            (OP_PUT, Args::Put(b"\0\x01hs".to_vec(), b"v".to_vec(), 7)),
            (
                OP_MULTI_PUT,
                Args::MultiPut(b"h".to_vec(), vec![(b"a".to_vec(), b"b".to_vec())], 0),
            ),
            (OP_GET, Args::Key(b"\0\x01hs".to_vec())),
            (OP_DUP_APPLY, Args::Key(b"\x0a\x01t".to_vec())),
            (
                OP_MULTI_REMOVE,
                Args::MultiRemove(b"h".to_vec(), vec![b"a".to_vec()]),
            ),
            (
                OP_MULTI_GET,
                Args::MultiGet(Box::new(MultiGet {
                    hash_key: b"h".to_vec(),
                    max_kv_count: 9,
                    ..MultiGet::default()
                })),
            ),
            (OP_QUERY_CFG, Args::QueryCfg("t".into(), vec![0, 1])),
            (OP_INCR, Args::Incr(b"\0\x01hs".to_vec(), -3, 9)),
            (
                OP_CHECK_AND_MUTATE,
                Args::CheckAndMutate(Box::new(CheckAndMutate {
                    hash_key: b"h".to_vec(),
                    mutations: vec![(1, b"s".to_vec(), Vec::new(), 0)],
                    ..CheckAndMutate::default()
                })),
            ),
            (
                OP_BATCH_GET,
                Args::BatchGet(vec![(b"h".to_vec(), b"s".to_vec())]),
            ),
            (OP_SCAN, Args::ContextId(4)),
            (OP_CLEAR_SCANNER, Args::ContextId(5)),
        ];
        for (op, a) in args {
            let body = encode_request(op, name_of(op).unwrap(), 5, &a);
            let req = decode_request(&body, 1, 2, 48).unwrap();
            assert_eq!((req.op, req.seqid, req.args), (op, 5, a));
        }
    }

    #[test]
    fn reply_round_trip() {
        let (server, primary) = server();
        let cases = [
            (OP_PUT, Outcome::Update(0, 42)),
            (OP_MULTI_REMOVE, Outcome::MultiRemove(0, 3, 43)),
            (OP_GET, Outcome::Read(1, Vec::new())),
            (OP_DUP_APPLY, Outcome::Read(0, b"\x08\x07".to_vec())),
            (
                OP_MULTI_GET,
                Outcome::MultiGet(7, vec![(b"s".to_vec(), b"v".to_vec())]),
            ),
            (OP_SORTKEY_COUNT, Outcome::Count(0, 5)),
            (OP_TTL, Outcome::Ttl(0, -1)),
            (
                OP_QUERY_CFG,
                Outcome::QueryCfg(
                    "ERR_OK".into(),
                    1,
                    2,
                    vec![
                        (0, 1, 5, Some(primary)),
                        (1, 3, 6, Some(0x7f00_0001_1234_0001)),
                    ],
                ),
            ),
            (OP_INCR, Outcome::Incr(0, 7, 44)),
            (
                OP_CHECK_AND_SET,
                Outcome::CheckAnd(13, true, true, b"old".to_vec(), 45),
            ),
            (
                OP_BATCH_GET,
                Outcome::BatchGet(0, vec![(b"h".to_vec(), b"s".to_vec(), b"v".to_vec())]),
            ),
            (
                OP_SCAN,
                Outcome::Scan(0, vec![(b"\0\x01hs".to_vec(), b"v".to_vec())], 3),
            ),
        ];
        for (op, outcome) in cases {
            let resp = Response {
                op,
                seqid: 9,
                app_id: 1,
                pidx: 0,
                name: name_of(op).unwrap().into(),
                error: ERR_OK.into(),
                result: outcome.clone(),
            };
            let mut out = Vec::new();
            encode_response(&resp, &server, primary, &mut out);
            let (err, _, seqid, got) = decode_reply(op, &out[4..]).unwrap();
            assert_eq!((err.as_str(), seqid, got), (ERR_OK, 9, outcome));
        }
        // a partition without a primary of its own names the address the client reached
        let resp = Response {
            op: OP_QUERY_CFG,
            seqid: 9,
            app_id: 0,
            pidx: 0,
            name: name_of(OP_QUERY_CFG).unwrap().into(),
            error: ERR_OK.into(),
            result: Outcome::QueryCfg("ERR_OK".into(), 1, 1, vec![(0, 1, 5, None)]),
        };
        let mut out = Vec::new();
        encode_response(&resp, &server, primary, &mut out);
        let got = decode_reply(OP_QUERY_CFG, &out[4..]).unwrap().3;
        assert_eq!(
            got,
            Outcome::QueryCfg("ERR_OK".into(), 1, 1, vec![(0, 1, 5, Some(primary))])
        );
    }

    #[test]
    fn lying_headers_are_refused() {
        let mut h = encode_v0_header(1 << 30, 1, 0);
        assert!(parse_header(&h, 0, DEFAULT_MAX_FRAME).is_err());
        h[11] = 47;
        assert_eq!(
            parse_header(&h, 0, DEFAULT_MAX_FRAME).unwrap_err().offset,
            8
        );
        assert!(header_length(b"GET / HT", 0).is_err());
    }
}
