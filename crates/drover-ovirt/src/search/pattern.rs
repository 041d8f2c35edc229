//! Wildcard patterns (`*` matches any run of characters), compiled once and
//! matched without allocating for ASCII text.

/// The pieces of a pattern between its wildcards.
#[derive(Debug, Clone)]
enum Shape {
    /// No wildcard: the whole text must equal it.
    Exact(String),
    /// `first*middle[0]*...*last`: text starting with `first`, ending with
    /// `last`, and holding the middles in order between them.
    Glob {
        first: String,
        middles: Vec<String>,
        last: String,
    },
}

/// A compiled pattern; case-insensitive ones are stored lower-cased.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    shape: Shape,
    fold: bool,
    ascii: bool,
}

impl Pattern {
    /// Compiles `raw`, in which `*` is a wildcard.
    pub(super) fn new(raw: &str, case_sensitive: bool) -> Self {
        let fold = !case_sensitive;
        let text = if fold {
            raw.to_lowercase()
        } else {
            raw.to_string()
        };
        let ascii = text.is_ascii();
        let mut pieces: Vec<String> = text.split('*').map(str::to_string).collect();
        let shape = if pieces.len() < 2 {
            Shape::Exact(text)
        } else {
            let last = pieces.pop().unwrap_or_default();
            let first = pieces.remove(0);
            pieces.retain(|p| !p.is_empty());
            Shape::Glob {
                first,
                middles: pieces,
                last,
            }
        };
        Self { shape, fold, ascii }
    }

    /// Compiles a pattern matching any text that contains `raw`.
    pub(super) fn containing(raw: &str, case_sensitive: bool) -> Self {
        Self::new(&format!("*{raw}*"), case_sensitive)
    }

    /// Whether `text` matches the whole pattern.
    pub(super) fn matches(&self, text: &str) -> bool {
        if self.fold && !(self.ascii && text.is_ascii()) {
            return self.matches_bytes(text.to_lowercase().as_bytes(), false);
        }
        self.matches_bytes(text.as_bytes(), self.fold)
    }

    /// Matches `hay`, lower-casing its ASCII bytes on the fly when `fold`.
    fn matches_bytes(&self, hay: &[u8], fold: bool) -> bool {
        match &self.shape {
            Shape::Exact(exact) => same(hay, exact.as_bytes(), fold),
            Shape::Glob {
                first,
                middles,
                last,
            } => {
                let (first, last) = (first.as_bytes(), last.as_bytes());
                if hay.len() < first.len() + last.len() {
                    return false;
                }
                let (head, rest) = hay.split_at(first.len());
                let (mut body, tail) = rest.split_at(rest.len() - last.len());
                if !same(head, first, fold) || !same(tail, last, fold) {
                    return false;
                }
                for middle in middles {
                    match find(body, middle.as_bytes(), fold) {
                        Some(at) => body = &body[at + middle.len()..],
                        None => return false,
                    }
                }
                true
            }
        }
    }
}

fn same(hay: &[u8], needle: &[u8], fold: bool) -> bool {
    if fold {
        hay.len() == needle.len()
            && hay
                .iter()
                .zip(needle)
                .all(|(h, n)| h.to_ascii_lowercase() == *n)
    } else {
        hay == needle
    }
}

fn find(hay: &[u8], needle: &[u8], fold: bool) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len())
        .position(|window| same(window, needle, fold))
}
