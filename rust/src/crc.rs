//! CRC32C (Castagnoli) and CRC-64/NVME, plus Pegasus partition hashing.
//!
//! Both CRCs chain zlib-style: the `crc` argument is a previous *final* value
//! (0 to start), so `crc(b, crc(a, 0)) == crc(a ++ b, 0)`.

/// Reflected polynomial of CRC-64/NVME.
const CRC64_POLY: u64 = 0x9A6C_9329_AC4B_C9B5;

/// Slice-by-8 tables; `TABLES[0]` is the classic byte-at-a-time table.
static CRC64_TABLES: [[u64; 256]; 8] = make_crc64_tables();

const fn make_crc64_tables() -> [[u64; 256]; 8] {
    let mut tables = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ CRC64_POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[t - 1][i];
            tables[t][i] = (prev >> 8) ^ tables[0][(prev & 0xFF) as usize];
            i += 1;
        }
        t += 1;
    }
    tables
}

/// CRC-64/NVME of `data`, continuing from the final value `crc` (0 to start).
pub fn crc64(data: &[u8], crc: u64) -> u64 {
    let t = &CRC64_TABLES;
    let mut state = !crc;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = state ^ u64::from_le_bytes(word);
        state = t[7][(v & 0xFF) as usize]
            ^ t[6][((v >> 8) & 0xFF) as usize]
            ^ t[5][((v >> 16) & 0xFF) as usize]
            ^ t[4][((v >> 24) & 0xFF) as usize]
            ^ t[3][((v >> 32) & 0xFF) as usize]
            ^ t[2][((v >> 40) & 0xFF) as usize]
            ^ t[1][((v >> 48) & 0xFF) as usize]
            ^ t[0][(v >> 56) as usize];
    }
    for &byte in chunks.remainder() {
        state = t[0][((state ^ u64::from(byte)) & 0xFF) as usize] ^ (state >> 8);
    }
    !state
}

/// CRC32C of `data`, continuing from the final value `crc` (0 to start).
#[inline]
pub fn crc32c(data: &[u8], crc: u32) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// Pegasus partition of a key: crc64 of `hash_key` (of `sort_key` when the
/// hash key is empty) modulo `partition_count`. `None` when the count is 0.
pub fn partition_index(hash_key: &[u8], partition_count: u64, sort_key: &[u8]) -> Option<u64> {
    if partition_count == 0 {
        return None;
    }
    let key = if hash_key.is_empty() {
        sort_key
    } else {
        hash_key
    };
    Some(crc64(key, 0) % partition_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc64_bitwise(data: &[u8], crc: u64) -> u64 {
        let mut state = !crc;
        for &b in data {
            state ^= u64::from(b);
            for _ in 0..8 {
                state = if state & 1 != 0 {
                    (state >> 1) ^ CRC64_POLY
                } else {
                    state >> 1
                };
            }
        }
        !state
    }

    #[test]
    fn check_values() {
        assert_eq!(crc32c(b"123456789", 0), 0xE306_9283);
        assert_eq!(crc64(b"123456789", 0), 0xAE8B_1486_0A79_9888);
        assert_eq!(crc32c(b"", 0), 0);
        assert_eq!(crc64(b"", 0), 0);
    }

    #[test]
    fn chaining() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 3) as u8).collect();
        for cut in [0, 1, 7, 8, 9, 63, 500, 999, 1000] {
            let (a, b) = data.split_at(cut);
            assert_eq!(crc64(b, crc64(a, 0)), crc64(&data, 0), "cut {cut}");
            assert_eq!(crc32c(b, crc32c(a, 0)), crc32c(&data, 0), "cut {cut}");
        }
    }

    #[test]
    fn slice_by_8_matches_bitwise() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 + 5) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(crc64(&data[..len], 0), crc64_bitwise(&data[..len], 0));
            assert_eq!(
                crc64(&data[..len], 12345),
                crc64_bitwise(&data[..len], 12345)
            );
        }
    }

    #[test]
    fn partition() {
        assert_eq!(partition_index(b"abc", 0, b""), None);
        assert_eq!(
            partition_index(b"abc", 8, b"zzz"),
            Some(crc64(b"abc", 0) % 8)
        );
        assert_eq!(partition_index(b"", 8, b"zzz"), Some(crc64(b"zzz", 0) % 8));
        assert_eq!(partition_index(b"", 1, b""), Some(0));
    }
}
