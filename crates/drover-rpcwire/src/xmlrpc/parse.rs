use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use base64::Engine;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use crate::{Call, Limits, WireError, WireValue};

/// Parses an XML-RPC `<methodCall>` body.
///
/// Rejects, as [`WireError`]: bodies over `limits.max_body` (before parsing),
/// invalid UTF-8, DOCTYPE declarations, undefined entities, unknown elements,
/// misplaced text, trailing content, out-of-range integers and values nested
/// deeper than `limits.max_depth`.
pub fn parse_call(body: &[u8], limits: &Limits) -> Result<Call, WireError> {
    if body.len() > limits.max_body {
        return Err(WireError::TooLarge);
    }
    let text =
        std::str::from_utf8(body).map_err(|_| WireError::malformed("body is not valid UTF-8"))?;
    Parser::new(text, limits.max_depth).call()
}

/// What the grammar sees of the XML event stream.
enum Token<'a> {
    Start(BytesStart<'a>),
    End,
    Text(Cow<'a, str>),
    Eof,
}

/// A start or end tag, once whitespace between elements has been skipped.
enum Tag<'a> {
    Start(BytesStart<'a>),
    End,
}

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    max_depth: usize,
    started: bool,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, max_depth: usize) -> Self {
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        Parser {
            reader,
            max_depth,
            started: false,
        }
    }

    fn call(mut self) -> Result<Call, WireError> {
        self.expect_start("methodCall")?;
        self.expect_start("methodName")?;
        let method = self.text_content("methodName")?;
        let params = match self.next_tag()? {
            Tag::End => Vec::new(),
            Tag::Start(e) if e.name().as_ref() == "params" => {
                let params = self.params()?;
                self.expect_end("methodCall")?;
                params
            }
            Tag::Start(e) => return Err(unexpected(&e, "methodCall")),
        };
        self.expect_eof()?;
        Ok(Call { method, params })
    }

    fn params(&mut self) -> Result<Vec<WireValue>, WireError> {
        let mut params = Vec::new();
        loop {
            match self.next_tag()? {
                Tag::Start(e) if e.name().as_ref() == "param" => {
                    self.expect_start("value")?;
                    params.push(self.value(0)?);
                    self.expect_end("param")?;
                }
                Tag::Start(e) => return Err(unexpected(&e, "params")),
                Tag::End => return Ok(params),
            }
        }
    }

    /// Parses the content of a `<value>` whose start tag has been read, at
    /// `depth` enclosing array/struct levels.
    fn value(&mut self, depth: usize) -> Result<WireValue, WireError> {
        let mut text = String::new();
        loop {
            match self.next()? {
                Token::Text(t) => text.push_str(&t),
                Token::End => return Ok(WireValue::Str(text)),
                Token::Start(e) => {
                    if !is_blank(&text) {
                        return Err(WireError::malformed("text mixed with elements in <value>"));
                    }
                    let value = self.typed(&e, depth)?;
                    self.expect_end("value")?;
                    return Ok(value);
                }
                Token::Eof => return Err(unexpected_eof()),
            }
        }
    }

    /// Parses a typed element such as `<int>` whose start tag has been read.
    fn typed(&mut self, element: &BytesStart<'_>, depth: usize) -> Result<WireValue, WireError> {
        let name = element.name();
        let name = name.as_ref();
        Ok(match name {
            "string" => WireValue::Str(self.text_content(name)?),
            "int" | "i4" | "i8" => {
                let text = self.text_content(name)?;
                WireValue::Int(trim(&text).parse().map_err(|_| {
                    WireError::malformed(format!("invalid or out-of-range <{name}>"))
                })?)
            }
            "boolean" => match trim(&self.text_content(name)?) {
                "0" => WireValue::Bool(false),
                "1" => WireValue::Bool(true),
                _ => return Err(WireError::malformed("<boolean> must be 0 or 1")),
            },
            "double" => {
                let text = self.text_content(name)?;
                WireValue::Double(
                    trim(&text)
                        .parse()
                        .map_err(|_| WireError::malformed("invalid <double>"))?,
                )
            }
            "dateTime.iso8601" => WireValue::DateTime(self.text_content(name)?),
            "base64" => WireValue::Base64(decode_base64(&self.text_content(name)?)?),
            "array" => self.array(depth + 1)?,
            "struct" => self.structure(depth + 1)?,
            _ if element.local_name().as_ref() == "nil" => {
                if !is_blank(&self.text_content(name)?) {
                    return Err(WireError::malformed("<nil/> must be empty"));
                }
                WireValue::Nil
            }
            _ => return Err(unexpected(element, "value")),
        })
    }

    fn array(&mut self, depth: usize) -> Result<WireValue, WireError> {
        if depth > self.max_depth {
            return Err(WireError::TooDeep);
        }
        self.expect_start("data")?;
        let mut items = Vec::new();
        loop {
            match self.next_tag()? {
                Tag::Start(e) if e.name().as_ref() == "value" => items.push(self.value(depth)?),
                Tag::Start(e) => return Err(unexpected(&e, "data")),
                Tag::End => break,
            }
        }
        self.expect_end("array")?;
        Ok(WireValue::Array(items))
    }

    fn structure(&mut self, depth: usize) -> Result<WireValue, WireError> {
        if depth > self.max_depth {
            return Err(WireError::TooDeep);
        }
        let mut members = Vec::new();
        loop {
            match self.next_tag()? {
                Tag::Start(e) if e.name().as_ref() == "member" => {
                    self.expect_start("name")?;
                    let name = self.text_content("name")?;
                    self.expect_start("value")?;
                    members.push((name, self.value(depth)?));
                    self.expect_end("member")?;
                }
                Tag::Start(e) => return Err(unexpected(&e, "struct")),
                Tag::End => return Ok(WireValue::Struct(members)),
            }
        }
    }

    /// Reads the text of the current element up to its end tag.
    fn text_content(&mut self, element: &str) -> Result<String, WireError> {
        let mut text = String::new();
        loop {
            match self.next()? {
                Token::Text(t) => text.push_str(&t),
                Token::End => return Ok(text),
                Token::Start(e) => return Err(unexpected(&e, element)),
                Token::Eof => return Err(unexpected_eof()),
            }
        }
    }

    fn expect_start(&mut self, name: &str) -> Result<(), WireError> {
        match self.next_tag()? {
            Tag::Start(e) if e.name().as_ref() == name => Ok(()),
            Tag::Start(e) => Err(WireError::malformed(format!(
                "expected <{name}>, found <{}>",
                clip(e.name().as_ref(), NAME_CHARS)
            ))),
            Tag::End => Err(WireError::malformed(format!("missing <{name}>"))),
        }
    }

    fn expect_end(&mut self, name: &str) -> Result<(), WireError> {
        match self.next_tag()? {
            Tag::End => Ok(()),
            Tag::Start(e) => Err(unexpected(&e, name)),
        }
    }

    fn expect_eof(&mut self) -> Result<(), WireError> {
        loop {
            match self.next()? {
                Token::Text(t) if is_blank(&t) => {}
                Token::Eof => return Ok(()),
                _ => return Err(WireError::malformed("content after </methodCall>")),
            }
        }
    }

    /// The next tag, skipping whitespace; any other text is an error.
    fn next_tag(&mut self) -> Result<Tag<'a>, WireError> {
        loop {
            match self.next()? {
                Token::Text(t) if is_blank(&t) => {}
                Token::Text(_) => {
                    return Err(WireError::malformed("unexpected text between elements"))
                }
                Token::Start(e) => return Ok(Tag::Start(e)),
                Token::End => return Ok(Tag::End),
                Token::Eof => return Err(unexpected_eof()),
            }
        }
    }

    /// The next token: comments are skipped, references resolved, and the
    /// XML declaration allowed only at the very start.
    fn next(&mut self) -> Result<Token<'a>, WireError> {
        loop {
            let event = self.reader.read_event().map_err(|e| {
                WireError::malformed(format!(
                    "{} at byte {}",
                    clip(&e.to_string(), 120),
                    self.reader.error_position()
                ))
            })?;
            let first = !self.started;
            self.started = true;
            return Ok(match event {
                Event::Start(e) => Token::Start(e),
                Event::End(_) => Token::End,
                Event::Text(t) => Token::Text(t.into_inner()),
                Event::CData(t) => Token::Text(t.into_inner()),
                Event::GeneralRef(r) => Token::Text(resolve_reference(&r)?),
                Event::Eof => Token::Eof,
                Event::Comment(_) => continue,
                Event::Decl(_) if first => continue,
                Event::Decl(_) => return Err(WireError::malformed("misplaced XML declaration")),
                Event::DocType(_) => return Err(WireError::malformed("DOCTYPE is not allowed")),
                Event::PI(_) => {
                    return Err(WireError::malformed(
                        "processing instructions are not allowed",
                    ))
                }
                // Not produced: empty elements are expanded into Start + End.
                Event::Empty(_) => return Err(WireError::malformed("unexpected empty element")),
            });
        }
    }
}

/// Resolves `&name;` (predefined entities only) and `&#N;` / `&#xN;`.
fn resolve_reference<'a>(reference: &BytesRef<'a>) -> Result<Cow<'a, str>, WireError> {
    if let Some(text) = resolve_xml_entity(reference) {
        return Ok(Cow::Borrowed(text));
    }
    match reference.resolve_char_ref() {
        Ok(Some(c)) => Ok(Cow::Owned(c.into())),
        Ok(None) => Err(WireError::malformed(format!(
            "undefined entity &{};",
            clip(reference, NAME_CHARS)
        ))),
        Err(_) => Err(WireError::malformed(format!(
            "invalid character reference &{};",
            clip(reference, NAME_CHARS)
        ))),
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, WireError> {
    let compact: Vec<u8> = text.bytes().filter(|b| !is_xml_space(*b)).collect();
    STANDARD_PAD_INDIFFERENT
        .decode(compact)
        .map_err(|_| WireError::malformed("invalid <base64>"))
}

fn unexpected(element: &BytesStart<'_>, parent: &str) -> WireError {
    WireError::malformed(format!(
        "unexpected <{}> in <{parent}>",
        clip(element.name().as_ref(), NAME_CHARS)
    ))
}

fn unexpected_eof() -> WireError {
    WireError::malformed("unexpected end of document")
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_blank(text: &str) -> bool {
    text.bytes().all(is_xml_space)
}

fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii() && is_xml_space(c as u8))
}

/// How much of a client-supplied name an error message quotes.
const NAME_CHARS: usize = 40;

/// The first `max_chars` characters of `text`, to keep error messages short.
fn clip(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}
