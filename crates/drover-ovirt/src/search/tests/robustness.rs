use super::Fake;
use crate::search::{complete, object_types, Query, VMS};

const QUERIES: &[&str] = &[
    "Vms: name = \"my vm\" and (status = up or Hosts.name != h*) memory >= 1024 sortby name desc page 2",
    "Events: severity = error and time > 2024-01-02T10:00 sortby time desc",
    "éà ( \"ü\\\" ) != <= >= ! * . : Hosts. Vms.",
];

const ALPHABET: &[char] = &[
    ' ', '(', ')', '"', '=', '!', '<', '>', 'a', '*', ':', '.', 'é', '\\',
];

/// Parses, evaluates and completes `text` against every object type.
fn exercise(text: &str, subject: &Fake) {
    for target in object_types() {
        for case_sensitive in [false, true] {
            if let Ok(query) = Query::parse(text, target, case_sensitive) {
                query.matches(subject);
                query.sort_key(subject);
            }
        }
        complete(text, target);
    }
}

#[test]
fn every_prefix_of_real_queries_is_handled() {
    let subject = Fake::named("vm").with("Hosts", Fake::named("h"));
    for query in QUERIES {
        let chars: Vec<char> = query.chars().collect();
        for end in 0..=chars.len() {
            exercise(&chars[..end].iter().collect::<String>(), &subject);
        }
    }
}

#[test]
fn every_short_string_of_awkward_characters_is_handled() {
    let subject = Fake::named("a").text("status", "up");
    let mut texts = vec![String::new()];
    for _ in 0..3 {
        texts = texts
            .iter()
            .flat_map(|t| ALPHABET.iter().map(move |c| format!("{t}{c}")))
            .collect();
        for text in &texts {
            if let Ok(query) = Query::parse(text, &VMS, false) {
                query.matches(&subject);
            }
            complete(text, &VMS);
        }
    }
}

#[test]
fn odd_values_do_not_upset_comparisons() {
    let subject = Fake::named("odd")
        .number("memory", f64::NAN)
        .number("vcpus", f64::INFINITY)
        .date("creationdate", i64::MIN)
        .date("creationdate", i64::MAX)
        .text("description", "2024-02-29T23:59:59");
    for text in [
        "memory > 1",
        "memory = *",
        "vcpus < 1e308",
        "creationdate > 9223372036854775807",
        "creationdate = *",
        "creationdate < 1970-01-01",
        "description > 2024-02-29T23:59",
        "description = 9223372036854775807",
    ] {
        Query::parse(text, &VMS, false).unwrap().matches(&subject);
    }
}
