use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::number::{push_f64, push_i64};
use crate::scan::{bytes_below, bytes_equal, find};
use crate::WireValue;

const PROLOG: &[u8] = b"<?xml version='1.0'?>\n";

/// Appends a `<methodResponse>` carrying `value` as its single parameter.
pub fn write_response(out: &mut Vec<u8>, value: &WireValue) {
    out.extend_from_slice(PROLOG);
    out.extend_from_slice(b"<methodResponse><params><param>");
    write_value(out, value);
    out.extend_from_slice(b"</param></params></methodResponse>");
}

/// Appends a `<methodResponse>` carrying a `<fault>` with `faultCode` and
/// `faultString`, for bodies that could not be parsed at all.
pub fn write_fault(out: &mut Vec<u8>, code: i32, message: &str) {
    out.extend_from_slice(PROLOG);
    out.extend_from_slice(
        b"<methodResponse><fault><value><struct>\
          <member><name>faultCode</name><value><int>",
    );
    push_i64(out, code.into());
    out.extend_from_slice(
        b"</int></value></member>\
          <member><name>faultString</name><value><string>",
    );
    push_escaped(out, message);
    out.extend_from_slice(
        b"</string></value></member>\
          </struct></value></fault></methodResponse>",
    );
}

fn write_value(out: &mut Vec<u8>, value: &WireValue) {
    out.extend_from_slice(b"<value>");
    match value {
        // Bare text in <value> is a string (as xapi writes it): a third smaller than <string>.
        WireValue::Str(s) => push_escaped(out, s),
        WireValue::Int(n) => {
            if i32::try_from(*n).is_ok() {
                out.extend_from_slice(b"<int>");
                push_i64(out, *n);
                out.extend_from_slice(b"</int>");
            } else {
                out.extend_from_slice(b"<i8>");
                push_i64(out, *n);
                out.extend_from_slice(b"</i8>");
            }
        }
        WireValue::Bool(b) => {
            out.extend_from_slice(if *b {
                b"<boolean>1</boolean>"
            } else {
                b"<boolean>0</boolean>"
            });
        }
        WireValue::Double(x) => {
            out.extend_from_slice(b"<double>");
            push_f64(out, *x);
            out.extend_from_slice(b"</double>");
        }
        WireValue::DateTime(s) => {
            out.extend_from_slice(b"<dateTime.iso8601>");
            push_escaped(out, s);
            out.extend_from_slice(b"</dateTime.iso8601>");
        }
        WireValue::Base64(bytes) => {
            out.extend_from_slice(b"<base64>");
            out.extend_from_slice(STANDARD.encode(bytes).as_bytes());
            out.extend_from_slice(b"</base64>");
        }
        WireValue::Array(items) => {
            out.extend_from_slice(b"<array><data>");
            for item in items {
                write_value(out, item);
            }
            out.extend_from_slice(b"</data></array>");
        }
        WireValue::Struct(members) => {
            out.extend_from_slice(b"<struct>");
            for (name, member) in members {
                out.extend_from_slice(b"<member><name>");
                push_escaped(out, name);
                out.extend_from_slice(b"</name>");
                write_value(out, member);
                out.extend_from_slice(b"</member>");
            }
            out.extend_from_slice(b"</struct>");
        }
        WireValue::Nil => out.extend_from_slice(b"<nil/>"),
    }
    out.extend_from_slice(b"</value>");
}

/// `true` for bytes that [`push_escaped`] may have to rewrite: markup
/// characters, `\r` (so parsers do not normalise it away), C0 controls other
/// than tab and newline, and 0xEF, the lead byte of U+FFFE and U+FFFF.
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b != b'\t' as usize && b != b'\n' as usize;
        b += 1;
    }
    table[b'&' as usize] = true;
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[0xEF] = true;
    table
};

/// `true` if no byte of `word` is in [`SPECIAL`] (tab and newline are
/// conservatively treated as special here).
fn clean_word(word: u64) -> bool {
    bytes_below(word, 0x20)
        | bytes_equal(word, b'&')
        | bytes_equal(word, b'<')
        | bytes_equal(word, b'>')
        | bytes_equal(word, 0xEF)
        == 0
}

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Appends `text` escaped for XML character data, with characters that XML 1.0
/// forbids replaced by U+FFFD.
fn push_escaped(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut done = 0;
    while let Some(offset) = find(&bytes[done..], |b| SPECIAL[usize::from(b)], clean_word) {
        let at = done + offset;
        out.extend_from_slice(&bytes[done..at]);
        let (replacement, width): (&[u8], usize) = match bytes[at] {
            b'&' => (b"&amp;", 1),
            b'<' => (b"&lt;", 1),
            b'>' => (b"&gt;", 1),
            b'\r' => (b"&#13;", 1),
            0xEF => match bytes.get(at + 1..at + 3) {
                Some([0xBF, 0xBE | 0xBF]) => (REPLACEMENT, 3),
                _ => (&bytes[at..at + 1], 1),
            },
            _ => (REPLACEMENT, 1),
        };
        out.extend_from_slice(replacement);
        done = at + width;
    }
    out.extend_from_slice(&bytes[done..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        push_escaped(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_markup_and_carriage_return() {
        assert_eq!(escaped("a&b<c>d\"e'"), "a&amp;b&lt;c&gt;d\"e'");
        assert_eq!(escaped("x\r\ny\tz"), "x&#13;\ny\tz");
    }

    #[test]
    fn replaces_characters_illegal_in_xml() {
        assert_eq!(escaped("\0\u{1}\u{1f}"), "\u{FFFD}\u{FFFD}\u{FFFD}");
        assert_eq!(escaped("a\u{FFFE}b\u{FFFF}"), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(
            escaped("\u{FEFF}\u{FFFD}\u{F000}"),
            "\u{FEFF}\u{FFFD}\u{F000}"
        );
    }

    #[test]
    fn ints_outside_i32_use_i8() {
        let mut out = Vec::new();
        write_value(&mut out, &WireValue::Int(1 << 31));
        assert_eq!(out, b"<value><i8>2147483648</i8></value>");
        out.clear();
        write_value(&mut out, &WireValue::Int(-(1 << 31)));
        assert_eq!(out, b"<value><int>-2147483648</int></value>");
    }

    #[test]
    fn fault_shape() {
        let mut out = Vec::new();
        write_fault(&mut out, -32700, "bad <xml>");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("<?xml version='1.0'?>\n<methodResponse><fault>"));
        assert!(text.contains("<name>faultCode</name><value><int>-32700</int></value>"));
        assert!(text.contains("<value><string>bad &lt;xml&gt;</string></value>"));
    }
}

/// Writes a value piece by piece, for answers too large to build as one [`WireValue`] tree.
/// The caller keeps the nesting balanced: every `begin_*` has its `end_*`, and every `member`
/// is followed by exactly one value and `end_member`.
pub struct ValueWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl ValueWriter<'_> {
    /// A whole value.
    pub fn value(&mut self, value: &WireValue) {
        write_value(self.out, value);
    }

    /// A string value, escaped, without building a [`WireValue`].
    pub fn str(&mut self, text: &str) {
        self.out.extend_from_slice(b"<value>");
        push_escaped(self.out, text);
        self.out.extend_from_slice(b"</value>");
    }

    /// Opens a struct value.
    pub fn begin_struct(&mut self) {
        self.out.extend_from_slice(b"<value><struct>");
    }

    /// Closes a struct value.
    pub fn end_struct(&mut self) {
        self.out.extend_from_slice(b"</struct></value>");
    }

    /// Opens a struct member; its value comes next.
    pub fn member(&mut self, name: &str) {
        self.out.extend_from_slice(b"<member><name>");
        push_escaped(self.out, name);
        self.out.extend_from_slice(b"</name>");
    }

    /// Closes a struct member.
    pub fn end_member(&mut self) {
        self.out.extend_from_slice(b"</member>");
    }

    /// Opens an array value.
    pub fn begin_array(&mut self) {
        self.out.extend_from_slice(b"<value><array><data>");
    }

    /// Closes an array value.
    pub fn end_array(&mut self) {
        self.out.extend_from_slice(b"</data></array></value>");
    }
}

/// Appends a `<methodResponse>` whose single parameter `body` writes.
pub fn write_response_with(out: &mut Vec<u8>, body: impl FnOnce(&mut ValueWriter<'_>)) {
    out.extend_from_slice(PROLOG);
    out.extend_from_slice(b"<methodResponse><params><param>");
    body(&mut ValueWriter { out: &mut *out });
    out.extend_from_slice(b"</param></params></methodResponse>");
}

#[cfg(test)]
mod streaming_tests {
    use super::*;

    #[test]
    fn streaming_equals_the_tree() {
        let tree = WireValue::Struct(vec![
            ("a&b".into(), WireValue::Str("x<y".into())),
            (
                "list".into(),
                WireValue::Array(vec![WireValue::Bool(true), WireValue::Str(String::new())]),
            ),
        ]);
        let mut expected = Vec::new();
        write_response(&mut expected, &tree);
        let mut streamed = Vec::new();
        write_response_with(&mut streamed, |w| {
            w.begin_struct();
            w.member("a&b");
            w.str("x<y");
            w.end_member();
            w.member("list");
            w.begin_array();
            w.value(&WireValue::Bool(true));
            w.str("");
            w.end_array();
            w.end_member();
            w.end_struct();
        });
        assert_eq!(
            String::from_utf8(streamed).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
