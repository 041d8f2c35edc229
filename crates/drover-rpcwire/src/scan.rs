//! Word-at-a-time search for the bytes a writer must escape: the writers spend
//! most of their time scanning string contents that need no escaping at all.

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Non-zero iff some byte of `word` is below `n` (`n` at most 0x80).
pub(crate) const fn bytes_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * n as u64) & !word & HIGHS
}

/// Non-zero iff some byte of `word` equals `byte`.
pub(crate) const fn bytes_equal(word: u64, byte: u8) -> u64 {
    bytes_below(word ^ (ONES * byte as u64), 1)
}

/// Index of the first byte for which `special` holds. `clean` must return
/// `true` only for 8-byte words that hold no such byte; it lets whole words be
/// skipped at once.
pub(crate) fn find(
    bytes: &[u8],
    special: impl Fn(u8) -> bool,
    clean: impl Fn(u64) -> bool,
) -> Option<usize> {
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        if !clean(u64::from_ne_bytes(*word)) {
            if let Some(offset) = word.iter().position(|&b| special(b)) {
                return Some(at + offset);
            }
        }
        at += 8;
    }
    let offset = bytes.get(at..)?.iter().position(|&b| special(b))?;
    Some(at + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_tests_match_bytewise_tests() {
        let samples: [[u8; 8]; 6] = [
            *b"abcdefgh",
            *b"abc\x1fefgh",
            *b"\x00bcdefgh",
            *b"abcdefg\xff",
            *b"&\x80\x7f\x20<>\xef\x01",
            [0x20, 0x21, 0xff, 0xfe, 0x80, 0x81, 0x7f, 0x40],
        ];
        for sample in samples {
            let word = u64::from_ne_bytes(sample);
            for n in [1, 0x20, 0x80] {
                assert_eq!(bytes_below(word, n) != 0, sample.iter().any(|&b| b < n));
            }
            for byte in [0, b'&', b'<', 0x7f, 0x80, 0xef, 0xff] {
                assert_eq!(bytes_equal(word, byte) != 0, sample.contains(&byte));
            }
        }
    }

    #[test]
    fn finds_first_special_byte() {
        let text = b"0123456789abcdef&ghij<";
        let special = |b: u8| b == b'&' || b == b'<';
        let clean = |w: u64| bytes_equal(w, b'&') | bytes_equal(w, b'<') == 0;
        assert_eq!(find(text, special, clean), Some(16));
        assert_eq!(find(&text[17..], special, clean), Some(4));
        assert_eq!(find(b"no specials here", special, clean), None);
        assert_eq!(find(b"", special, clean), None);
    }
}
