//! The value of a condition, compiled once for every way a field value may
//! be compared with it.

use std::cmp::Ordering;

use super::calendar;
use super::lexer::Op;
use super::pattern::Pattern;
use super::schema::FieldKind;
use super::subject::FieldValue;

/// A condition's value as written, with its readings as pattern, text,
/// number, date and boolean.
#[derive(Debug, Clone)]
pub(super) struct Literal {
    raw: String,
    pattern: Pattern,
    wildcard: bool,
    /// `raw`, lower-cased when comparing case-insensitively.
    text: String,
    fold: bool,
    number: Option<f64>,
    /// The span of an ISO-style date.
    date: Option<(i64, i64)>,
    /// The span of a date given in unix seconds.
    epoch: Option<(i64, i64)>,
    flag: Option<bool>,
}

impl Literal {
    pub(super) fn new(raw: &str, case_sensitive: bool) -> Self {
        let fold = !case_sensitive;
        Self {
            raw: raw.to_string(),
            pattern: Pattern::new(raw, case_sensitive),
            wildcard: raw.contains('*'),
            text: if fold {
                raw.to_lowercase()
            } else {
                raw.to_string()
            },
            fold,
            number: parse_number(raw),
            date: calendar::parse(raw),
            epoch: raw
                .parse::<i64>()
                .ok()
                .map(|secs| (secs, secs.saturating_add(1))),
            flag: ["false", "true"]
                .iter()
                .position(|b| raw.eq_ignore_ascii_case(b))
                .map(|i| i == 1),
        }
    }

    /// Why the value does not fit a field of `kind` compared with `op`: a
    /// description of what would.
    pub(super) fn fits(&self, kind: FieldKind, op: Op) -> Result<(), String> {
        let wildcard_text = self.wildcard && matches!(op, Op::Eq | Op::Ne);
        match kind {
            FieldKind::Text => Ok(()),
            FieldKind::Number if self.number.is_some() || wildcard_text => Ok(()),
            FieldKind::Number => Err("a number".to_string()),
            FieldKind::Date if self.span().is_some() || wildcard_text => Ok(()),
            FieldKind::Date => {
                Err("a date such as 2024-01-02 or 2024-01-02T10:00, or unix seconds".to_string())
            }
            FieldKind::Bool if self.flag.is_some() => Ok(()),
            FieldKind::Bool => Err("true or false".to_string()),
            FieldKind::Enum(values) => {
                let pattern = Pattern::new(&self.raw, false);
                if values.iter().any(|v| pattern.matches(v)) {
                    Ok(())
                } else {
                    Err(format!("one of {}", values.join(", ")))
                }
            }
        }
    }

    /// Whether `value` equals the literal (wildcards allowed).
    pub(super) fn equals(&self, value: &FieldValue) -> bool {
        match value {
            FieldValue::Text(text) => self.pattern.matches(text),
            FieldValue::Number(n) => match self.number {
                Some(x) => *n == x,
                None => self.pattern.matches(&n.to_string()),
            },
            FieldValue::Date(secs) => match self.span() {
                Some((start, end)) => (start..end).contains(secs),
                None => self.pattern.matches(&calendar::format(*secs)),
            },
            FieldValue::Bool(b) => match self.flag {
                Some(flag) => flag == *b,
                None => self.pattern.matches(bool_text(*b)),
            },
        }
    }

    /// Whether `value op literal` holds for an ordering operator: numbers
    /// numerically, dates chronologically, anything else as text.
    pub(super) fn orders(&self, op: Op, value: &FieldValue) -> bool {
        let ordering = match value {
            FieldValue::Number(n) => match self.number {
                Some(x) => n.partial_cmp(&x),
                None => Some(self.text_cmp(&n.to_string())),
            },
            FieldValue::Date(secs) => match self.span() {
                Some(span) => return span_holds(op, *secs, span),
                None => Some(self.text_cmp(&calendar::format(*secs))),
            },
            FieldValue::Bool(b) => Some(self.text_cmp(bool_text(*b))),
            FieldValue::Text(text) => {
                if let (Some(x), Some(n)) = (self.number, parse_number(text)) {
                    n.partial_cmp(&x)
                } else if let (Some(span), Some((at, _))) = (self.date, calendar::parse(text)) {
                    return span_holds(op, at, span);
                } else {
                    Some(self.text_cmp(text))
                }
            }
        };
        ordering.is_some_and(|o| match op {
            Op::Lt => o.is_lt(),
            Op::Le => o.is_le(),
            Op::Gt => o.is_gt(),
            Op::Ge => o.is_ge(),
            Op::Eq => o.is_eq(),
            Op::Ne => o.is_ne(),
        })
    }

    /// The span of the literal read as a date, ISO-style or unix seconds.
    fn span(&self) -> Option<(i64, i64)> {
        self.date.or(self.epoch)
    }

    /// How `text` orders against the literal's text.
    fn text_cmp(&self, text: &str) -> Ordering {
        if self.fold {
            text.chars()
                .flat_map(char::to_lowercase)
                .cmp(self.text.chars())
        } else {
            text.cmp(&self.text)
        }
    }
}

/// Whether the instant `at` relates by `op` to the span `[start, end)`: it is
/// before the span for `<`, before its end for `<=`, and so on.
fn span_holds(op: Op, at: i64, (start, end): (i64, i64)) -> bool {
    match op {
        Op::Lt => at < start,
        Op::Le => at < end,
        Op::Gt => at >= end,
        Op::Ge => at >= start,
        Op::Eq => (start..end).contains(&at),
        Op::Ne => !(start..end).contains(&at),
    }
}

/// `text` as a finite number, when it is written as one.
fn parse_number(text: &str) -> Option<f64> {
    let numeric = text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if !numeric {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}
