//! The Thrift binary protocol, as much of it as Pegasus's messages use
//! (docs/pegasus-protocol.md §3): the twin of `net/pegasus/thrift.py`.
//!
//! A [`Reader`] never trusts a length or a count: each is checked against the
//! bytes really left before anything is allocated, and every rejection names
//! the offset of what it rejects (`base` + the position in the buffer), with
//! the same offsets and reasons as the Python reader.

pub const T_STOP: i8 = 0;
pub const T_BOOL: i8 = 2;
pub const T_BYTE: i8 = 3;
pub const T_DOUBLE: i8 = 4;
pub const T_I16: i8 = 6;
pub const T_I32: i8 = 8;
pub const T_I64: i8 = 10;
pub const T_STRING: i8 = 11;
pub const T_STRUCT: i8 = 12;
pub const T_MAP: i8 = 13;
pub const T_SET: i8 = 14;
pub const T_LIST: i8 = 15;

pub const T_CALL: i8 = 1;
pub const T_REPLY: i8 = 2;
pub const T_ONEWAY: i8 = 4;

const VERSION_1: u32 = 0x8001_0000;
const VERSION_MASK: u32 = 0xFFFF_0000;
/// Nesting deeper than this is refused while skipping unknown fields.
pub const MAX_DEPTH: usize = 32;

/// A rejected byte string: where the rejected bytes start, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub offset: u64,
    pub reason: String,
}

impl ProtocolError {
    pub fn new(offset: u64, reason: impl Into<String>) -> Self {
        ProtocolError {
            offset,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pegasus protocol error at offset {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for ProtocolError {}

pub type PResult<T> = std::result::Result<T, ProtocolError>;

/// The fewest bytes one element of a type takes (Python's `MIN_SIZE.get(t, 1)`).
fn min_size(t: i8) -> u64 {
    match t {
        T_DOUBLE | T_I64 => 8,
        T_I16 => 2,
        T_I32 | T_STRING => 4,
        T_MAP => 6,
        T_SET | T_LIST => 5,
        _ => 1,
    }
}

pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    pub base: u64,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        Reader { buf, pos: 0, base }
    }

    pub fn end(&self) -> usize {
        self.buf.len()
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn fail(&self, reason: impl Into<String>) -> ProtocolError {
        ProtocolError::new(self.base + self.pos as u64, reason)
    }

    pub fn fail_at(&self, at: usize, reason: impl Into<String>) -> ProtocolError {
        ProtocolError::new(self.base + at as u64, reason)
    }

    pub fn need(&mut self, n: usize, what: &str) -> PResult<usize> {
        let p = self.pos;
        if n > self.left() {
            return Err(self.fail(format!("{what} needs {n} bytes, {} left", self.left())));
        }
        self.pos = p + n;
        Ok(p)
    }

    pub fn byte(&mut self, what: &str) -> PResult<i8> {
        let p = self.need(1, what)?;
        Ok(self.buf[p] as i8)
    }

    pub fn bool(&mut self, what: &str) -> PResult<bool> {
        Ok(self.byte(what)? != 0)
    }

    pub fn i16(&mut self, what: &str) -> PResult<i16> {
        let p = self.need(2, what)?;
        Ok(i16::from_be_bytes([self.buf[p], self.buf[p + 1]]))
    }

    pub fn i32(&mut self, what: &str) -> PResult<i32> {
        let p = self.need(4, what)?;
        Ok(i32::from_be_bytes(self.buf[p..p + 4].try_into().unwrap()))
    }

    pub fn i64(&mut self, what: &str) -> PResult<i64> {
        let p = self.need(8, what)?;
        Ok(i64::from_be_bytes(self.buf[p..p + 8].try_into().unwrap()))
    }

    pub fn binary(&mut self, what: &str) -> PResult<&'a [u8]> {
        let at = self.pos;
        let n = self.i32(&format!("length of {what}"))?;
        if n < 0 {
            return Err(self.fail_at(at, format!("{what} has negative length {n}")));
        }
        let n = n as usize;
        if n > self.left() {
            return Err(self.fail_at(at, format!("{what} claims {n} bytes, {} left", self.left())));
        }
        let p = self.pos;
        self.pos = p + n;
        Ok(&self.buf[p..p + n])
    }

    pub fn string(&mut self, what: &str) -> PResult<String> {
        let at = self.pos;
        let raw = self.binary(what)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.fail_at(at, format!("{what} is not UTF-8"))),
        }
    }

    /// `(type, id)` of the next field; type `T_STOP` ends the struct.
    pub fn field(&mut self) -> PResult<(i8, i16)> {
        let p = self.need(1, "field type")?;
        if self.buf[p] as i8 == T_STOP {
            return Ok((T_STOP, 0));
        }
        self.pos = p;
        let p = self.need(3, "field header")?;
        let ftype = self.buf[p] as i8;
        let fid = i16::from_be_bytes([self.buf[p + 1], self.buf[p + 2]]);
        Ok((ftype, fid))
    }

    /// `(element type, count)` of a list or set, the count bounded by the bytes left.
    pub fn collection(&mut self, what: &str) -> PResult<(i8, usize)> {
        let at = self.pos;
        let etype = self.byte(&format!("element type of {what}"))?;
        let n = self.i32(&format!("count of {what}"))?;
        self.bound(n, min_size(etype), what, at)?;
        Ok((etype, n as usize))
    }

    fn bound(&self, n: i32, size: u64, what: &str, at: usize) -> PResult<()> {
        if n < 0 {
            return Err(self.fail_at(at, format!("{what} has negative count {n}")));
        }
        if n as u64 * size > self.left() as u64 {
            return Err(self.fail_at(
                at,
                format!(
                    "{what} claims {n} elements, only {} bytes left",
                    self.left()
                ),
            ));
        }
        Ok(())
    }

    /// Skip one value of `ftype` (an unknown field), bounded in size and depth.
    pub fn skip(&mut self, ftype: i8, depth: usize) -> PResult<()> {
        if depth > MAX_DEPTH {
            return Err(self.fail(format!("values nested deeper than {MAX_DEPTH}")));
        }
        let size = match ftype {
            T_BOOL | T_BYTE => Some(1),
            T_I16 => Some(2),
            T_I32 => Some(4),
            T_I64 | T_DOUBLE => Some(8),
            _ => None,
        };
        if let Some(size) = size {
            self.need(size, "skipped value")?;
            return Ok(());
        }
        match ftype {
            T_STRING => {
                let at = self.pos;
                let n = self.i32("length of skipped string")?;
                if n < 0 {
                    return Err(self.fail_at(at, format!("skipped string has negative length {n}")));
                }
                self.need(n as usize, "skipped string")?;
            }
            T_STRUCT => loop {
                let (t, _) = self.field()?;
                if t == T_STOP {
                    return Ok(());
                }
                self.skip(t, depth + 1)?;
            },
            T_LIST | T_SET => {
                let (etype, n) = self.collection("skipped list")?;
                for _ in 0..n {
                    self.skip(etype, depth + 1)?;
                }
            }
            T_MAP => {
                let at = self.pos;
                let ktype = self.byte("key type of skipped map")?;
                let vtype = self.byte("value type of skipped map")?;
                let n = self.i32("count of skipped map")?;
                self.bound(n, min_size(ktype) + min_size(vtype), "skipped map", at)?;
                for _ in 0..n {
                    self.skip(ktype, depth + 1)?;
                    self.skip(vtype, depth + 1)?;
                }
            }
            _ => {
                let at = if self.pos >= 3 {
                    self.pos - 3
                } else {
                    self.pos
                };
                return Err(self.fail_at(at, format!("unknown Thrift type {ftype}")));
            }
        }
        Ok(())
    }

    /// `(name, message type, seqid)`, strict (versioned) or old-style.
    /// The type is Python's int: strict headers give 0..=255, old-style a signed byte.
    pub fn message_begin(&mut self) -> PResult<(String, i32, i32)> {
        let at = self.pos;
        let first = self.i32("message header")?;
        let (name, mtype) = if first < 0 {
            let v = first as u32;
            if v & VERSION_MASK != VERSION_1 {
                return Err(self.fail_at(at, format!("bad Thrift message version {v:#010x}")));
            }
            let mtype = (v & 0xFF) as i32;
            (self.string("message name")?, mtype)
        } else {
            let n = first as usize;
            if n > self.left() {
                return Err(self.fail_at(
                    at,
                    format!("message name claims {first} bytes, {} left", self.left()),
                ));
            }
            let p = self.need(n, "message name")?;
            let name = match std::str::from_utf8(&self.buf[p..p + n]) {
                Ok(s) => s.to_owned(),
                Err(_) => return Err(self.fail_at(p, "message name is not UTF-8")),
            };
            (name, i32::from(self.byte("message type")?))
        };
        let seqid = self.i32("sequence id")?;
        Ok((name, mtype, seqid))
    }
}

// -- writers ----------------------------------------------------------------------

pub fn put_field(out: &mut Vec<u8>, ftype: i8, fid: i16) {
    out.push(ftype as u8);
    out.extend_from_slice(&fid.to_be_bytes());
}

pub fn put_i32(out: &mut Vec<u8>, fid: i16, v: i32) {
    put_field(out, T_I32, fid);
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_i64(out: &mut Vec<u8>, fid: i16, v: i64) {
    put_field(out, T_I64, fid);
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_bool(out: &mut Vec<u8>, fid: i16, v: bool) {
    put_field(out, T_BOOL, fid);
    out.push(u8::from(v));
}

pub fn put_binary_value(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as i32).to_be_bytes());
    out.extend_from_slice(data);
}

pub fn put_string(out: &mut Vec<u8>, fid: i16, data: &[u8]) {
    put_field(out, T_STRING, fid);
    put_binary_value(out, data);
}

/// A `dsn.blob` field: marked T_STRUCT, its payload a bare Thrift binary.
pub fn put_blob(out: &mut Vec<u8>, fid: i16, data: &[u8]) {
    put_field(out, T_STRUCT, fid);
    put_binary_value(out, data);
}

pub fn put_list_begin(out: &mut Vec<u8>, fid: i16, etype: i8, count: usize) {
    put_field(out, T_LIST, fid);
    out.push(etype as u8);
    out.extend_from_slice(&(count as i32).to_be_bytes());
}

pub fn put_stop(out: &mut Vec<u8>) {
    out.push(T_STOP as u8);
}

/// A strict (versioned) message header.
pub fn put_message_begin(out: &mut Vec<u8>, name: &[u8], mtype: i8, seqid: i32) {
    out.extend_from_slice(&(VERSION_1 | mtype as u8 as u32).to_be_bytes());
    put_binary_value(out, name);
    out.extend_from_slice(&seqid.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_lengths_are_refused_before_allocating() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&i32::MAX.to_be_bytes());
        let mut r = Reader::new(&buf, 100);
        let e = r.binary("blob").unwrap_err();
        assert_eq!(e.offset, 100);
        let list = [T_STRING as u8, 0x7f, 0xff, 0xff, 0xff];
        let mut r = Reader::new(&list, 0);
        assert!(r.collection("l").is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut buf = Vec::new();
        for _ in 0..40 {
            put_field(&mut buf, T_STRUCT, 1);
        }
        let mut r = Reader::new(&buf, 0);
        let e = r.skip(T_STRUCT, 0).unwrap_err();
        assert!(e.reason.contains("nested deeper"));
    }

    #[test]
    fn message_round_trip() {
        let mut out = Vec::new();
        put_message_begin(&mut out, b"RPC_X", T_CALL, 42);
        let mut r = Reader::new(&out, 0);
        assert_eq!(r.message_begin().unwrap(), ("RPC_X".to_owned(), 1, 42));
    }
}
