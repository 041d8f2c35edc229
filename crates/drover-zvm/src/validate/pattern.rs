//! The regular expressions of the reference's schemas, matched as Python's `re.search` does.
//!
//! Each pattern keeps its Python source text (messages quote it) and a hand-written structure
//! matched by following every reachable position, so backtracking never matters. Python
//! semantics kept: `\w` and `\s` are Unicode-aware, `$` also matches before a final `\n`, and
//! `.` is any character but `\n`.

/// A pattern of the reference.
#[derive(Debug)]
pub(super) struct Pattern {
    /// The Python source text, as `repr` shows it in messages.
    pub(super) source: &'static str,
    branches: &'static [Branch],
}

/// One top-level alternative.
#[derive(Debug)]
struct Branch {
    /// Anchored with `^` (otherwise found anywhere).
    from_start: bool,
    /// Anchored with `$` (otherwise a prefix is enough).
    to_end: bool,
    pieces: &'static [Piece],
}

/// One element of a branch.
#[derive(Debug)]
enum Piece {
    /// A character class repeated `min..=max` times.
    Class(fn(char) -> bool, u32, u32),
    /// Exact text.
    Lit(&'static str),
    /// ASCII text in either case (`(r|R)(h|H)...`).
    NoCase(&'static str),
    /// A group repeated `min..=max` times.
    Group(&'static [Piece], u32, u32),
    /// Alternatives.
    Alt(&'static [&'static [Piece]]),
}

const MANY: u32 = u32::MAX;

use Piece::{Alt, Class as C, Group as G, Lit as L, NoCase as I};

/// Python's `\w` on `str` patterns (Unicode letters and digits, and `_`).
fn word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Python's `\s` on `str` patterns (`str.isspace`).
fn space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn hex(c: char) -> bool {
    c.is_ascii_hexdigit()
}

/// `.`
fn not_newline(c: char) -> bool {
    c != '\n'
}

/// `[a-zA-Z0-9\-]`
fn alnum_dash(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// `[a-zA-Z0-9-._]`
fn host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
}

/// `[1-9]`
fn nonzero_digit(c: char) -> bool {
    ('1'..='9').contains(&c)
}

/// `[m|M|g|G]` (the `|` is a member of the class).
fn mem_unit(c: char) -> bool {
    matches!(c, 'm' | 'M' | 'g' | 'G' | '|')
}

/// `(6|7|8|9)`
fn rhel_major(c: char) -> bool {
    ('6'..='9').contains(&c)
}

/// `(6|7)`
fn redhat_major(c: char) -> bool {
    c == '6' || c == '7'
}

/// A pattern anchored at both ends (`^...$`).
macro_rules! anchored {
    ($source:literal, $($piece:expr),+ $(,)?) => {
        Pattern {
            source: $source,
            branches: &[Branch { from_start: true, to_end: true, pieces: &[$($piece),+] }],
        }
    };
}

/// `^[0-9a-fA-F]{,4}$` (vdev, rdev, dedicated devices).
pub(super) const HEX4: Pattern = anchored!(r"^[0-9a-fA-F]{,4}$", C(hex, 0, 4));
/// `^[0-9a-fA-F]{,16}$` (loaddev port name and LUN).
pub(super) const HEX16: Pattern = anchored!(r"^[0-9a-fA-F]{,16}$", C(hex, 0, 16));
/// Positive and non-negative integers given as strings.
pub(super) const DIGITS: Pattern = anchored!(r"^[0-9]*$", C(digit, 0, MANY));
/// Userid, CPU pool, resource domain.
pub(super) const USERID: Pattern = anchored!(r"^(\w{,8})$", C(word, 0, 8));
/// CPU share.
pub(super) const SHARE: Pattern = anchored!(r"^(\w{,64})$", C(word, 0, 64));
/// PCI function.
pub(super) const PCIF: Pattern = anchored!(r"^(\w{,9})$", C(word, 0, 9));
/// Comma-separated userids (path userids, stats queries).
pub(super) const USERID_LIST: Pattern = anchored!(
    r"^(\s*\w{1,8}\s*)(,\s*\w{1,8}\s*){0,}$",
    C(space, 0, MANY),
    C(word, 1, 8),
    C(space, 0, MANY),
    G(
        &[L(","), C(space, 0, MANY), C(word, 1, 8), C(space, 0, MANY)],
        0,
        MANY
    ),
);
/// Host volume name.
pub(super) const VOLUME: Pattern = anchored!(r"^(\w{,6})$", C(word, 0, 6));
/// `TYPE:pool` disk pools.
pub(super) const DISK_POOL: Pattern =
    anchored!(r"^\w+:\w+$", C(word, 1, MANY), L(":"), C(word, 1, MANY));
/// Up to three real devices separated by whitespace.
pub(super) const RDEV_LIST: Pattern = anchored!(
    r"^([0-9a-fA-F]{,4})(\s+[0-9a-fA-F]{,4}){,2}$",
    C(hex, 0, 4),
    G(&[C(space, 1, MANY), C(hex, 0, 4)], 0, 2),
);
/// Image URLs: an `http(s)://` prefix, or a whole `file:///...`.
pub(super) const URL: Pattern = Pattern {
    source: r"^https?:/{2}|^file:/{3}\w.+$",
    branches: &[
        Branch {
            from_start: true,
            to_end: false,
            pieces: &[L("http"), G(&[L("s")], 0, 1), L("://")],
        },
        Branch {
            from_start: true,
            to_end: true,
            pieces: &[L("file:///"), C(word, 1, 1), C(not_newline, 1, MANY)],
        },
    ],
};
/// MAC addresses.
pub(super) const MAC: Pattern = anchored!(
    r"^([0-9a-fA-F]{2})(:[0-9a-fA-F]{2}){5}$",
    C(hex, 2, 2),
    G(&[L(":"), C(hex, 2, 2)], 5, 5),
);
/// `user@host` of remote hosts.
pub(super) const REMOTEHOST: Pattern = anchored!(
    r"^[a-zA-Z0-9\-]+\@([0-9]{1,3}(.[0-9]{1,3}){3}$|[a-zA-Z0-9\-]+(.[a-zA-Z0-9\-]){1,}$)",
    C(alnum_dash, 1, MANY),
    L("@"),
    Alt(&[
        &[
            C(digit, 1, 3),
            G(&[C(not_newline, 1, 1), C(digit, 1, 3)], 3, 3)
        ],
        &[
            C(alnum_dash, 1, MANY),
            G(&[C(not_newline, 1, 1), C(alnum_dash, 1, 1)], 1, MANY),
        ],
    ]),
);
/// A `*` anywhere (vswitch controller).
pub(super) const STAR: Pattern = Pattern {
    source: r"\*",
    branches: &[Branch {
        from_start: false,
        to_end: false,
        pieces: &[L("*")],
    }],
};
/// Red Hat `rhelX[.Y]`.
pub(super) const OS_RHEL: Pattern = anchored!(
    r"^((r|R)(h|H)(e|E)(l|L))(6|7|8|9){1}([.][0-9])?$",
    I("rhel"),
    C(rhel_major, 1, 1),
    G(&[L("."), C(digit, 1, 1)], 0, 1),
);
/// Red Hat `redhatX[.Y]`.
pub(super) const OS_REDHAT: Pattern = anchored!(
    r"^((r|R)(e|E)(d|D)(h|H)(a|A)(t|T))(6|7){1}([.][0-9])?$",
    I("redhat"),
    C(redhat_major, 1, 1),
    G(&[L("."), C(digit, 1, 1)], 0, 1),
);
/// SUSE `slesX[.Y|spY]`.
pub(super) const OS_SLES: Pattern = anchored!(
    r"^((s|S)(l|L)(e|E)(s|S))(11|12|15){1}(([.]|((s|S)(p|P)))[0-9])?$",
    I("sles"),
    Alt(&[&[L("11")], &[L("12")], &[L("15")]]),
    G(&[Alt(&[&[L(".")], &[I("sp")]]), C(digit, 1, 1)], 0, 1),
);
/// SUSE `suseX[.Y|spY]`.
pub(super) const OS_SUSE: Pattern = anchored!(
    r"^((s|S)(u|U)(s|S)(e|E))(11|12|15){1}(([.]|((s|S)(p|P)))[0-9])?$",
    I("suse"),
    Alt(&[&[L("11")], &[L("12")], &[L("15")]]),
    G(&[Alt(&[&[L(".")], &[I("sp")]]), C(digit, 1, 1)], 0, 1),
);
/// Ubuntu `ubuntuX[.YY][.Z]`.
pub(super) const OS_UBUNTU: Pattern = anchored!(
    r"^((u|U)(b|B)(u|U)(n|N)(t|T)(u|U))(16|20|22){1}([.][0-9]{2})?([.][0-9])?$",
    I("ubuntu"),
    Alt(&[&[L("16")], &[L("20")], &[L("22")]]),
    G(&[L("."), C(digit, 2, 2)], 0, 1),
    G(&[L("."), C(digit, 1, 1)], 0, 1),
);
/// Red Hat CoreOS `rhcos4[.Y][.Z]`.
pub(super) const OS_RHCOS: Pattern = anchored!(
    r"^((r|R)(h|H)(c|C)(o|O)(s|S))(4){1}([.][0-9]{1,2})?([.][0-9]{1,2})?$",
    I("rhcos"),
    L("4"),
    G(&[L("."), C(digit, 1, 2)], 0, 1),
    G(&[L("."), C(digit, 1, 2)], 0, 1),
);
/// MD5 sums.
pub(super) const MD5: Pattern = anchored!(r"^[0-9a-fA-F]{32}$", C(hex, 32, 32));
/// Deploy host names.
pub(super) const HOSTNAME: Pattern = anchored!(r"^[a-zA-Z0-9-._]*$", C(host_char, 0, MANY));
/// FCP device numbers.
pub(super) const FCP: Pattern = anchored!(r"^[0-9a-fA-F]{4}$", C(hex, 4, 4));
/// WWPNs and LUNs.
pub(super) const WWPN: Pattern = anchored!(r"^0x[0-9a-fA-F]{16}$", L("0x"), C(hex, 16, 16));
/// Memory sizes (`max_mem`, resize `size`).
pub(super) const MEMORY: Pattern = anchored!(
    r"^[1-9][0-9]{0,3}[m|M|g|G]$",
    C(nonzero_digit, 1, 1),
    C(digit, 0, 3),
    C(mem_unit, 1, 1),
);

impl Pattern {
    /// Whether `re.search(source, text)` finds a match.
    pub(super) fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = chars.len();
        self.branches.iter().any(|branch| {
            let mut start = vec![false; n + 1];
            if branch.from_start {
                start[0] = true;
            } else {
                start.fill(true);
            }
            let end = run(&chars, branch.pieces, start);
            if branch.to_end {
                end[n] || (n > 0 && chars[n - 1] == '\n' && end[n - 1])
            } else {
                end.contains(&true)
            }
        })
    }
}

/// The positions reachable after `pieces` from the positions in `set`.
fn run(chars: &[char], pieces: &[Piece], mut set: Vec<bool>) -> Vec<bool> {
    for piece in pieces {
        set = step(chars, piece, &set);
    }
    set
}

fn step(chars: &[char], piece: &Piece, set: &[bool]) -> Vec<bool> {
    let mut out = vec![false; set.len()];
    let starts = set
        .iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(p, _)| p);
    match piece {
        Piece::Class(class, min, max) => {
            for p in starts {
                let run = chars[p..]
                    .iter()
                    .take(*max as usize)
                    .take_while(|c| class(**c))
                    .count();
                for len in (*min as usize)..=run {
                    out[p + len] = true;
                }
            }
        }
        Piece::Lit(text) | Piece::NoCase(text) => {
            let exact = matches!(piece, Piece::Lit(_));
            let len = text.chars().count();
            for p in starts {
                let hit = chars.len() - p >= len
                    && chars[p..p + len].iter().zip(text.chars()).all(|(a, b)| {
                        if exact {
                            *a == b
                        } else {
                            a.eq_ignore_ascii_case(&b)
                        }
                    });
                if hit {
                    out[p + len] = true;
                }
            }
        }
        Piece::Alt(options) => {
            for option in *options {
                let reached = run(chars, option, set.to_vec());
                merge(&mut out, &reached);
            }
        }
        Piece::Group(pieces, min, max) => {
            if *min == 0 {
                out.copy_from_slice(set);
            }
            let mut current = set.to_vec();
            for count in 1..=*max {
                current = run(chars, pieces, current);
                if count >= *min {
                    let grew = current.iter().zip(&out).any(|(new, old)| *new && !*old);
                    if !grew {
                        break;
                    }
                    merge(&mut out, &current);
                }
            }
        }
    }
    out
}

fn merge(into: &mut [bool], from: &[bool]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a |= *b;
    }
}
