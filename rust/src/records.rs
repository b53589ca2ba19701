//! Stored records as a scan reads them: RocksDB key `u16 BE hash key length,
//! hash key, sort key`, value `u32 BE expire_ts, u64 BE timetag, user value`
//! (docs/wal-format.md, "RocksDB records"). Mirrors `records.py`.

/// Keys shorter than this are bookkeeping (the decree meta keys), never records.
pub const MIN_RECORD_KEY: usize = 2;
/// expire_ts and timetag in front of every stored value.
pub const VALUE_HEADER: usize = 12;

/// What a scan does with one stored key and value.
#[derive(Debug, PartialEq, Eq)]
pub enum Scanned<'a> {
    /// a meta key, a delete's tombstone, or expired at `now`
    Skip,
    /// (hash key, sort key, user value)
    Live(&'a [u8], &'a [u8], &'a [u8]),
    /// a value shorter than its header: no record this store writes
    Short,
}

/// `records.decode_key`: a hash key length past the end takes what there is.
pub fn split_key(key: &[u8]) -> (&[u8], &[u8]) {
    let n = usize::from(u16::from_be_bytes([key[0], key[1]]));
    let end = (MIN_RECORD_KEY + n).min(key.len());
    (&key[MIN_RECORD_KEY..end], &key[end..])
}

/// `records.live_value` after `is_meta_key`, for a scan at Pegasus time `now` (seconds).
pub fn scan_record<'a>(key: &'a [u8], raw: &'a [u8], now: i64) -> Scanned<'a> {
    if key.len() < MIN_RECORD_KEY {
        return Scanned::Skip;
    }
    if raw.len() < VALUE_HEADER {
        return Scanned::Short;
    }
    if raw[11] & 1 != 0 {
        return Scanned::Skip;
    }
    let expire_ts = i64::from(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]));
    if 0 < expire_ts && expire_ts <= now {
        return Scanned::Skip;
    }
    let (hk, sk) = split_key(key);
    Scanned::Live(hk, sk, &raw[VALUE_HEADER..])
}

/// A stored value shorter than its header: no record this store writes.
#[derive(Debug, PartialEq, Eq)]
pub struct ShortValue;

/// The user value of a stored record live at `now`; None for a delete's tombstone or an
/// expired record.
pub fn live_value(raw: &[u8], now: i64) -> Result<Option<&[u8]>, ShortValue> {
    if raw.len() < VALUE_HEADER {
        return Err(ShortValue);
    }
    if raw[11] & 1 != 0 {
        return Ok(None);
    }
    let expire_ts = i64::from(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]));
    if 0 < expire_ts && expire_ts <= now {
        return Ok(None);
    }
    Ok(Some(&raw[VALUE_HEADER..]))
}

/// Pegasus's key filters (`filter_type`: 0 none, 1 anywhere, 2 prefix, 3 postfix), as
/// `conditions.matches`: an empty pattern passes everything. None for an unknown type.
pub fn key_matches(filter_type: u8, pattern: &[u8], data: &[u8]) -> Option<bool> {
    if filter_type > 3 {
        return None;
    }
    if filter_type == 0 || pattern.is_empty() {
        return Some(true);
    }
    Some(match filter_type {
        1 => data.windows(pattern.len()).any(|w| w == pattern),
        2 => data.starts_with(pattern),
        _ => data.ends_with(pattern),
    })
}

/// The common case of an incr (`storage/atomic.py`), decided without Python: the stored
/// record `raw` (None: absent) is absent, a tombstone, or a record without TTL that is
/// empty or a plain decimal (digits only, no leading 0, under 19 digits), and the sum fits
/// an int64. Returns the new value (its expire_ts is the caller's, or 0: what an incr keeps
/// of a record without TTL, or gives an absent one). None for everything else
/// (a record with a TTL, which needs the store's clock; another int form; a value that is
/// not an int64; an overflow): the caller decides those.
pub fn incr_fast(raw: Option<&[u8]>, increment: i64) -> Option<i64> {
    let value = match raw {
        None => None,
        Some(raw) if raw.len() < VALUE_HEADER || raw[..4] != [0, 0, 0, 0] => return None,
        Some(raw) if raw[11] & 1 != 0 => None,
        Some(raw) => Some(&raw[VALUE_HEADER..]),
    };
    let base = match value {
        None | Some(b"") => 0,
        Some(v) => {
            let plain =
                v.len() < 19 && v.iter().all(u8::is_ascii_digit) && (v[0] != b'0' || v.len() == 1);
            if !plain {
                return None;
            }
            v.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
        }
    };
    base.checked_add(increment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(expire_ts: u32, timetag: u64, user: &[u8]) -> Vec<u8> {
        let mut v = expire_ts.to_be_bytes().to_vec();
        v.extend_from_slice(&timetag.to_be_bytes());
        v.extend_from_slice(user);
        v
    }

    #[test]
    fn live_expired_tombstone_meta_short() {
        let key = [&[0u8, 2][..], b"hk", b"sk"].concat();
        assert_eq!(
            scan_record(&key, &value(0, 8, b"v"), 100),
            Scanned::Live(b"hk", b"sk", b"v")
        );
        assert_eq!(
            scan_record(&key, &value(101, 8, b"v"), 100),
            Scanned::Live(b"hk", b"sk", b"v")
        );
        assert_eq!(scan_record(&key, &value(100, 8, b"v"), 100), Scanned::Skip);
        assert_eq!(scan_record(&key, &value(0, 9, b""), 100), Scanned::Skip);
        assert_eq!(scan_record(b"\x00", &value(0, 8, b"v"), 100), Scanned::Skip);
        assert_eq!(scan_record(&key, b"short", 100), Scanned::Short);
    }

    #[test]
    fn live_values() {
        assert_eq!(live_value(&value(0, 8, b"v"), 100), Ok(Some(&b"v"[..])));
        assert_eq!(live_value(&value(100, 8, b"v"), 100), Ok(None));
        assert_eq!(live_value(&value(0, 9, b""), 100), Ok(None));
        assert_eq!(live_value(b"short", 100), Err(ShortValue));
    }

    #[test]
    fn incr_common_cases() {
        assert_eq!(incr_fast(None, 5), Some(5));
        assert_eq!(incr_fast(Some(&value(0, 8, b"41")), 1), Some(42));
        assert_eq!(incr_fast(Some(&value(0, 9, b"")), 1), Some(1));
        assert_eq!(incr_fast(Some(&value(0, 8, b"")), -3), Some(-3));
        assert_eq!(incr_fast(Some(&value(0, 8, b"0")), 1), Some(1));
        // left to the caller: records with a TTL, other forms, non-numbers, overflow, short values
        assert_eq!(incr_fast(Some(&value(150, 8, b"41")), 1), None);
        assert_eq!(incr_fast(Some(&value(150, 9, b"")), 1), None);
        for v in [
            &b"007"[..],
            b"+1",
            b" 1",
            b"0x1",
            b"-1",
            b"1a",
            b"1234567890123456789",
        ] {
            assert_eq!(incr_fast(Some(&value(0, 8, v)), 1), None);
        }
        assert_eq!(incr_fast(Some(&value(0, 8, b"1")), i64::MAX), None);
        assert_eq!(incr_fast(Some(b"short"), 1), None);
    }

    #[test]
    fn filters() {
        assert_eq!(key_matches(0, b"x", b"abc"), Some(true));
        assert_eq!(key_matches(1, b"", b"abc"), Some(true));
        assert_eq!(key_matches(1, b"bc", b"abc"), Some(true));
        assert_eq!(key_matches(1, b"abcd", b"abc"), Some(false));
        assert_eq!(key_matches(2, b"ab", b"abc"), Some(true));
        assert_eq!(key_matches(2, b"bc", b"abc"), Some(false));
        assert_eq!(key_matches(3, b"bc", b"abc"), Some(true));
        assert_eq!(key_matches(3, b"ab", b"abc"), Some(false));
        assert_eq!(key_matches(4, b"", b"abc"), None);
    }

    #[test]
    fn hash_key_length_past_the_end() {
        assert_eq!(split_key(&[0, 9, b'a']), (&b"a"[..], &b""[..]));
        assert_eq!(split_key(&[0, 0, b'a']), (&b""[..], &b"a"[..]));
    }
}
