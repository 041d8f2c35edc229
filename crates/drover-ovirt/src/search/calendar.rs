//! UTC dates in queries: `2024-01-02`, `2024-01-02T10:00`,
//! `2024-01-02T10:00:30` (a space may replace the `T`, a `Z` may follow).

use drover_model::time::{civil_from_days, days_from_civil};

const DAY: i64 = 86_400;

/// The span `[start, end)` in unix seconds that a written date covers: a
/// whole day, minute or second depending on its precision.
pub(super) fn parse(text: &str) -> Option<(i64, i64)> {
    let b = text.strip_suffix(['Z', 'z']).unwrap_or(text).as_bytes();
    let (year, month, day) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    let valid_day = (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day);
    if !valid_day || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let midnight = days_from_civil(year, month, day) * DAY;
    if b.len() == 10 {
        return Some((midnight, midnight + DAY));
    }
    let (hour, minute) = (digits(b, 11, 2)?, digits(b, 14, 2)?);
    let separated = matches!(b.get(10), Some(b'T' | b't' | b' ')) && b.get(13) == Some(&b':');
    if !separated || hour > 23 || minute > 59 {
        return None;
    }
    let at = midnight + hour * 3600 + minute * 60;
    match b.len() {
        16 => Some((at, at + 60)),
        19 if b.get(16) == Some(&b':') => {
            let second = digits(b, 17, 2).filter(|s| *s <= 59)?;
            Some((at + second, at + second + 1))
        }
        _ => None,
    }
}

/// `secs` (unix seconds) as `YYYY-MM-DDTHH:MM:SS`, for wildcard matching.
pub(super) fn format(secs: i64) -> String {
    let (days, time) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// The value of the `len` ASCII digits at `at`, if they are all there.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let run = b.get(at..at + len)?;
    run.iter().try_fold(0, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}
