//! xapi's query expressions for `get_all_records_where`:
//! `field "power_state"="Running" and not (field "is_a_template"="true" or false)`.

use drover_core::Obj;
use drover_model::Value;

/// A parsed expression.
#[derive(Debug, PartialEq)]
pub enum Expr {
    /// Constant.
    Const(bool),
    /// `a = b` (or `a <> b` when false), each side a field or a literal.
    Eq(Operand, Operand, bool),
    /// Negation.
    Not(Box<Expr>),
    /// Conjunction.
    And(Box<Expr>, Box<Expr>),
    /// Disjunction.
    Or(Box<Expr>, Box<Expr>),
}

/// One side of a comparison.
#[derive(Debug, PartialEq)]
pub enum Operand {
    /// `field "name"`.
    Field(String),
    /// `"text"`.
    Lit(String),
}

#[derive(Debug, PartialEq, Clone)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Eq,
    Ne,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        match c {
            c if c.is_whitespace() => {
                it.next();
            }
            '(' => {
                it.next();
                out.push(Tok::Open)
            }
            ')' => {
                it.next();
                out.push(Tok::Close)
            }
            '=' => {
                it.next();
                out.push(Tok::Eq)
            }
            '<' | '!' => {
                it.next();
                match it.next() {
                    Some('>') if c == '<' => out.push(Tok::Ne),
                    Some('=') if c == '!' => out.push(Tok::Ne),
                    _ => return Err(format!("unexpected {c}")),
                }
            }
            '"' => {
                it.next();
                let mut text = String::new();
                loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => text.push(it.next().ok_or("unterminated string")?),
                        Some(ch) => text.push(ch),
                        None => return Err("unterminated string".into()),
                    }
                }
                out.push(Tok::Str(text));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut w = String::new();
                while let Some(&ch) = it.peek() {
                    if ch.is_alphanumeric() || ch == '_' {
                        w.push(ch);
                        it.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(w.to_lowercase()));
            }
            other => return Err(format!("unexpected {other}")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.word("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.word("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }
    fn not(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("expression nested too deeply".into());
        }
        let e = if self.word("not") {
            self.pos += 1;
            Expr::Not(Box::new(self.not()?))
        } else {
            self.atom()?
        };
        self.depth -= 1;
        Ok(e)
    }
    fn operand(&mut self, t: Tok) -> Result<Operand, String> {
        match t {
            Tok::Str(s) => Ok(Operand::Lit(s)),
            Tok::Word(w) if w == "field" => match self.next() {
                Some(Tok::Str(name)) => Ok(Operand::Field(name)),
                _ => Err("field needs a quoted name".into()),
            },
            other => Err(format!("unexpected {other:?}")),
        }
    }

    fn atom(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Open) => {
                let e = self.or()?;
                match self.next() {
                    Some(Tok::Close) => Ok(e),
                    _ => Err("missing )".into()),
                }
            }
            Some(Tok::Word(w)) if w == "true" => Ok(Expr::Const(true)),
            Some(Tok::Word(w)) if w == "false" => Ok(Expr::Const(false)),
            Some(t @ (Tok::Word(_) | Tok::Str(_))) => {
                let left = self.operand(t)?;
                let eq = match self.next() {
                    Some(Tok::Eq) => true,
                    Some(Tok::Ne) => false,
                    _ => return Err("expected = or <>".into()),
                };
                let t = self.next().ok_or("expected a value")?;
                let right = self.operand(t)?;
                Ok(Expr::Eq(left, right, eq))
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

/// Parses an expression.
pub fn parse(s: &str) -> Result<Expr, String> {
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
        depth: 0,
    };
    if p.toks.is_empty() {
        return Ok(Expr::Const(true));
    }
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err("trailing input".into());
    }
    Ok(e)
}

fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::DateTime(t) => drover_model::time::format(*t),
        other => format!("{other:?}"),
    }
}

impl Operand {
    fn value(&self, o: &Obj) -> Option<String> {
        match self {
            Operand::Lit(s) => Some(s.clone()),
            Operand::Field(f) => o.class.field_index(f).map(|i| text(&o.fields[i])),
        }
    }
}

impl Expr {
    /// Whether an object matches.
    pub fn eval(&self, o: &Obj) -> bool {
        match self {
            Expr::Const(b) => *b,
            Expr::Eq(a, b, eq) => match (a.value(o), b.value(o)) {
                (Some(x), Some(y)) => (x == y) == *eq,
                _ => !*eq,
            },
            Expr::Not(e) => !e.eval(o),
            Expr::And(a, b) => a.eval(o) && b.eval(o),
            Expr::Or(a, b) => a.eval(o) || b.eval(o),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_binding_tighter() {
        let e = parse(r#"field "a"="1" or "2"=field "b" and not true"#).unwrap();
        assert_eq!(
            e,
            Expr::Or(
                Box::new(Expr::Eq(
                    Operand::Field("a".into()),
                    Operand::Lit("1".into()),
                    true
                )),
                Box::new(Expr::And(
                    Box::new(Expr::Eq(
                        Operand::Lit("2".into()),
                        Operand::Field("b".into()),
                        true
                    )),
                    Box::new(Expr::Not(Box::new(Expr::Const(true))))
                ))
            )
        );
        assert!(parse(r#"field "a"="#).is_err());
        assert!(parse("(((").is_err());
        assert!(parse(&"not ".repeat(1000)).is_err());
    }
}
