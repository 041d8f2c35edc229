//! The text of Python's `json.loads(body.decode())` error for a body that is not JSON, which the
//! original puts after `Malformed JSON: `: the decoder's message and position (`Expecting ','
//! delimiter: line 1 column 12 (char 11)`), or the UTF-8 decoding error. It follows CPython's
//! scanner (`Modules/_json.c`, 3.11), whose positions count characters, not bytes.

/// Python's error for `bytes`, or `None` when Python would read them (NaN, Infinity and
/// other extensions serde_json refuses) or fail otherwise than with a `ValueError` (nesting
/// deeper than its recursion limit).
pub fn python_error(bytes: &[u8]) -> Option<String> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return Some(utf8_error(bytes, &e)),
    };
    let s: Vec<char> = text.chars().collect();
    let fail = |msg: &str, pos: usize| Some(located(&s, msg, pos));
    if s.first() == Some(&'\u{feff}') {
        return fail("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0);
    }
    let start = skip_ws(&s, 0);
    match value(&s, start, 0) {
        Ok(end) => {
            let end = skip_ws(&s, end);
            if end != s.len() {
                fail("Extra data", end)
            } else {
                None
            }
        }
        Err(Error::Value(pos)) => fail("Expecting value", pos),
        Err(Error::At(msg, pos)) => fail(msg, pos),
        Err(Error::TooDeep) => None,
    }
}

enum Error {
    /// `StopIteration`: no value starts here (reported as "Expecting value").
    Value(usize),
    /// Any other decoding error.
    At(&'static str, usize),
    /// Nested deeper than Python's recursion limit (a `RecursionError`).
    TooDeep,
}

/// About where CPython's default recursion limit stops the scanner.
const MAX_DEPTH: usize = 990;

/// `msg: line L column C (char P)`, as `JSONDecodeError` formats it.
fn located(s: &[char], msg: &str, pos: usize) -> String {
    let before = &s[..pos.min(s.len())];
    let line = before.iter().filter(|c| **c == '\n').count() + 1;
    let col = match before.iter().rposition(|c| *c == '\n') {
        Some(nl) => pos - nl,
        None => pos + 1,
    };
    format!("{msg}: line {line} column {col} (char {pos})")
}

fn skip_ws(s: &[char], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], ' ' | '\t' | '\n' | '\r') {
        i += 1;
    }
    i
}

fn starts(s: &[char], i: usize, word: &str) -> bool {
    let w: Vec<char> = word.chars().collect();
    s.len() >= i + w.len() && s[i..i + w.len()] == w[..]
}

/// Scans one value at `i` (`scan_once_unicode`); answers where it ends.
fn value(s: &[char], i: usize, depth: usize) -> Result<usize, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    let Some(&c) = s.get(i) else {
        return Err(Error::Value(i));
    };
    match c {
        '"' => string(s, i + 1),
        '{' => object(s, i + 1, depth + 1),
        '[' => array(s, i + 1, depth + 1),
        'n' if starts(s, i, "null") => Ok(i + 4),
        't' if starts(s, i, "true") => Ok(i + 4),
        'f' if starts(s, i, "false") => Ok(i + 5),
        'N' if starts(s, i, "NaN") => Ok(i + 3),
        'I' if starts(s, i, "Infinity") => Ok(i + 8),
        '-' if starts(s, i, "-Infinity") => Ok(i + 9),
        _ => number(s, i),
    }
}

fn digits(s: &[char], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// `_match_number_unicode`.
fn number(s: &[char], start: usize) -> Result<usize, Error> {
    let mut i = start;
    if s.get(i) == Some(&'-') {
        i += 1;
    }
    match s.get(i) {
        Some('1'..='9') => i = digits(s, i + 1),
        Some('0') => i += 1,
        _ => return Err(Error::Value(start)),
    }
    if s.get(i) == Some(&'.') && s.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
        i = digits(s, i + 2);
    }
    if matches!(s.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some('+' | '-')) {
            j += 1;
        }
        if s.get(j).is_some_and(|c| c.is_ascii_digit()) {
            i = digits(s, j + 1);
        }
    }
    Ok(i)
}

/// `scanstring_unicode` from just after the opening quote.
fn string(s: &[char], mut i: usize) -> Result<usize, Error> {
    let begin = i - 1;
    loop {
        loop {
            let Some(&c) = s.get(i) else {
                return Err(Error::At("Unterminated string starting at", begin));
            };
            if c == '"' {
                return Ok(i + 1);
            }
            if c == '\\' {
                break;
            }
            if (c as u32) <= 0x1f {
                return Err(Error::At("Invalid control character at", i));
            }
            i += 1;
        }
        i += 1; // the backslash
        let Some(&c) = s.get(i) else {
            return Err(Error::At("Unterminated string starting at", begin));
        };
        if c != 'u' {
            if !matches!(c, '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') {
                return Err(Error::At("Invalid \\escape", i - 1));
            }
            i += 1;
            continue;
        }
        i += 1;
        let end = i + 4;
        if end >= s.len() {
            return Err(Error::At("Invalid \\uXXXX escape", i - 1));
        }
        if !s[i..end].iter().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::At("Invalid \\uXXXX escape", end - 5));
        }
        let high = u32::from_str_radix(&s[i..end].iter().collect::<String>(), 16).unwrap_or(0);
        i = end;
        // A surrogate pair's second half is read (and checked) with the first.
        if (0xd800..=0xdbff).contains(&high)
            && s.get(i) == Some(&'\\')
            && s.get(i + 1) == Some(&'u')
        {
            let end2 = i + 6;
            // Too short or not hex: either way the `u` of the second escape is blamed.
            if end2 >= s.len() || !s[i + 2..end2].iter().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::At("Invalid \\uXXXX escape", i + 1));
            }
            let low =
                u32::from_str_radix(&s[i + 2..end2].iter().collect::<String>(), 16).unwrap_or(0);
            if (0xdc00..=0xdfff).contains(&low) {
                i = end2;
            }
        }
    }
}

/// `_parse_object_unicode` from just after `{`.
fn object(s: &[char], i: usize, depth: usize) -> Result<usize, Error> {
    let mut i = skip_ws(s, i);
    if s.get(i) == Some(&'}') {
        return Ok(i + 1);
    }
    loop {
        if s.get(i) != Some(&'"') {
            return Err(Error::At(
                "Expecting property name enclosed in double quotes",
                i,
            ));
        }
        i = skip_ws(s, string(s, i + 1)?);
        if s.get(i) != Some(&':') {
            return Err(Error::At("Expecting ':' delimiter", i));
        }
        i = skip_ws(s, i + 1);
        i = skip_ws(s, value(s, i, depth)?);
        match s.get(i) {
            Some('}') => return Ok(i + 1),
            Some(',') => i = skip_ws(s, i + 1),
            _ => return Err(Error::At("Expecting ',' delimiter", i)),
        }
    }
}

/// `_parse_array_unicode` from just after `[`.
fn array(s: &[char], i: usize, depth: usize) -> Result<usize, Error> {
    let mut i = skip_ws(s, i);
    if s.get(i) == Some(&']') {
        return Ok(i + 1);
    }
    loop {
        i = skip_ws(s, value(s, i, depth)?);
        match s.get(i) {
            Some(']') => return Ok(i + 1),
            Some(',') => i = skip_ws(s, i + 1),
            _ => return Err(Error::At("Expecting ',' delimiter", i)),
        }
    }
}

/// Python's `UnicodeDecodeError` text for bytes that are not UTF-8.
fn utf8_error(bytes: &[u8], e: &std::str::Utf8Error) -> String {
    let start = e.valid_up_to();
    let (len, reason) = match e.error_len() {
        None => (bytes.len() - start, "unexpected end of data"),
        Some(n) => {
            let lead = bytes[start];
            let reason = if (0xc2..=0xf4).contains(&lead) {
                "invalid continuation byte"
            } else {
                "invalid start byte"
            };
            (n, reason)
        }
    };
    if len <= 1 {
        format!(
            "'utf-8' codec can't decode byte 0x{:02x} in position {start}: {reason}",
            bytes[start]
        )
    } else {
        format!(
            "'utf-8' codec can't decode bytes in position {start}-{}: {reason}",
            start + len - 1
        )
    }
}

#[cfg(test)]
mod tests {
    use super::python_error;

    fn err(s: &str) -> String {
        python_error(s.as_bytes()).unwrap_or_default()
    }

    #[test]
    fn messages_and_positions_are_pythons() {
        // Each expectation is what CPython 3.11's json.loads says.
        assert_eq!(
            err("{bad json"),
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
        );
        assert_eq!(err(""), "Expecting value: line 1 column 1 (char 0)");
        assert_eq!(err("  "), "Expecting value: line 1 column 3 (char 2)");
        assert_eq!(
            err("{\"guest\": 1"),
            "Expecting ',' delimiter: line 1 column 12 (char 11)"
        );
        assert_eq!(
            err("[1, 2"),
            "Expecting ',' delimiter: line 1 column 6 (char 5)"
        );
        assert_eq!(
            err("{\"guest\": {}} x"),
            "Extra data: line 1 column 15 (char 14)"
        );
        assert_eq!(
            err("{\"a\": 1,\n \"b\": }"),
            "Expecting value: line 2 column 7 (char 15)"
        );
        assert_eq!(
            err("{\"a\" 1}"),
            "Expecting ':' delimiter: line 1 column 6 (char 5)"
        );
        assert_eq!(
            err("{\"a\": 1,}"),
            "Expecting property name enclosed in double quotes: line 1 column 9 (char 8)"
        );
        assert_eq!(err("[1,]"), "Expecting value: line 1 column 4 (char 3)");
        assert_eq!(
            err("\"abc"),
            "Unterminated string starting at: line 1 column 1 (char 0)"
        );
        assert_eq!(
            err("\"a\\qb\""),
            "Invalid \\escape: line 1 column 3 (char 2)"
        );
        assert_eq!(
            err("\"a\u{1}\""),
            "Invalid control character at: line 1 column 3 (char 2)"
        );
        assert_eq!(
            err("[01]"),
            "Expecting ',' delimiter: line 1 column 3 (char 2)"
        );
        assert_eq!(err("nul"), "Expecting value: line 1 column 1 (char 0)");
        assert_eq!(err("\u{e9}x"), "Expecting value: line 1 column 1 (char 0)");
        assert_eq!(
            err("[\"\u{e9}\" x]"),
            "Expecting ',' delimiter: line 1 column 6 (char 5)"
        );
        assert_eq!(python_error(b"[NaN, -Infinity, 1e5, -0.5]"), None);
        assert_eq!(python_error(b"{\"a\": [true, false, null]}"), None);
        assert_eq!(python_error("[".repeat(100_000).as_bytes()), None);
        assert_eq!(
            err("\"\\u12\""),
            "Invalid \\uXXXX escape: line 1 column 3 (char 2)"
        );
        assert_eq!(
            err("\"\\ud800\\u12\""),
            "Invalid \\uXXXX escape: line 1 column 9 (char 8)"
        );
        assert_eq!(python_error(b"\"\\ud800\\udc00\""), None);
        assert_eq!(
            err("\"\\ud800\\\""),
            "Unterminated string starting at: line 1 column 1 (char 0)"
        );
        assert_eq!(err("1."), "Extra data: line 1 column 2 (char 1)");
        assert_eq!(err("-"), "Expecting value: line 1 column 1 (char 0)");
    }

    #[test]
    fn undecodable_bytes_are_reported_as_python_does() {
        assert_eq!(
            python_error(b"\xff{}").unwrap(),
            "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
        );
        assert_eq!(
            python_error(b"{\"a\": \"\xe2\x82\x28\"}").unwrap(),
            "'utf-8' codec can't decode bytes in position 7-8: invalid continuation byte"
        );
        assert_eq!(
            python_error(b"\"\xe2\x82").unwrap(),
            "'utf-8' codec can't decode bytes in position 1-2: unexpected end of data"
        );
    }
}
