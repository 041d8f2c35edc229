//! Number formatting shared by both writers.

use std::io::Write;

/// Appends the decimal form of `n`.
pub(crate) fn push_i64(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut pos = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        pos -= 1;
        digits[pos] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[pos..]);
}

/// Appends the shortest form of `x` that parses back to the same value, e.g.
/// `1.5`, `1e300`, `inf`, `NaN`: Python's `float()` and Rust's `parse` accept all of them.
pub(crate) fn push_f64(out: &mut Vec<u8>, x: f64) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{x:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        for n in [0, 7, -7, 10, 1234567890, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_i64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn doubles_round_trip() {
        for x in [
            0.0,
            -0.0,
            1.0,
            1.5,
            0.1,
            1e300,
            -2.5e-300,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let mut out = Vec::new();
            push_f64(&mut out, x);
            let text = String::from_utf8(out).unwrap();
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                x.to_bits(),
                "{text}"
            );
        }
    }
}
