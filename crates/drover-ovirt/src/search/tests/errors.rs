use super::{vms_error, vms_query};
use crate::search::SearchError::{self, *};

fn s(text: &str) -> String {
    text.to_string()
}

fn check(cases: &[(&str, SearchError)]) {
    for (text, expected) in cases {
        let error = vms_error(text);
        assert_eq!(&error, expected, "{text:?}");
        assert_eq!(error.pos(), expected.pos());
    }
}

#[test]
fn unbalanced_quotes() {
    check(&[
        ("name = \"abc", UnbalancedQuote { pos: 7 }),
        ("\"", UnbalancedQuote { pos: 0 }),
        ("name = \"a\\\"", UnbalancedQuote { pos: 7 }),
        ("name = \"a\" or \"b", UnbalancedQuote { pos: 14 }),
    ]);
}

#[test]
fn unbalanced_parentheses() {
    check(&[
        ("(name = a", UnclosedParen { pos: 0 }),
        ("((name = a)", UnclosedParen { pos: 0 }),
        ("name = a and (status = up", UnclosedParen { pos: 13 }),
        ("name = a)", UnmatchedParen { pos: 8 }),
        (
            ")",
            ExpectedCondition {
                found: s("')'"),
                pos: 0,
            },
        ),
        ("(name = a))", UnmatchedParen { pos: 10 }),
    ]);
}

#[test]
fn lone_bang() {
    check(&[
        ("name ! a", IncompleteOperator { pos: 5 }),
        ("name = a!", IncompleteOperator { pos: 8 }),
    ]);
}

#[test]
fn object_prefixes_and_cross_references() {
    check(&[
        (
            "Foo: name = a",
            UnknownObjectType {
                name: s("Foo"),
                pos: 0,
            },
        ),
        (
            "  foo:",
            UnknownObjectType {
                name: s("foo"),
                pos: 2,
            },
        ),
        (
            "Foo.name = a",
            UnknownObjectType {
                name: s("Foo"),
                pos: 0,
            },
        ),
        (
            "Hosts: name = a",
            WrongObjectType {
                found: "Hosts",
                expected: "Vms",
                pos: 0,
            },
        ),
        (
            " host:",
            WrongObjectType {
                found: "Hosts",
                expected: "Vms",
                pos: 1,
            },
        ),
        (
            "name = a and Clusters.name = b",
            NotJoinable {
                object: "Clusters",
                target: "Vms",
                pos: 13,
            },
        ),
    ]);
}

#[test]
fn unknown_fields() {
    check(&[
        (
            "bogus = 1",
            UnknownField {
                field: s("bogus"),
                object: "Vms",
                pos: 0,
            },
        ),
        (
            "name = a and bogus = 1",
            UnknownField {
                field: s("bogus"),
                object: "Vms",
                pos: 13,
            },
        ),
        (
            "Hosts.bogus = 1",
            UnknownField {
                field: s("bogus"),
                object: "Hosts",
                pos: 6,
            },
        ),
        (
            "Hosts. = 1",
            UnknownField {
                field: s(""),
                object: "Hosts",
                pos: 6,
            },
        ),
        (
            "éé bogus = 1",
            UnknownField {
                field: s("bogus"),
                object: "Vms",
                pos: 3,
            },
        ),
    ]);
}

#[test]
fn dangling_operators() {
    check(&[
        ("= a", DanglingOperator { op: "=", pos: 0 }),
        ("name = a = b", DanglingOperator { op: "=", pos: 9 }),
        ("\"x\" != a", DanglingOperator { op: "!=", pos: 4 }),
        ("(<= a)", DanglingOperator { op: "<=", pos: 1 }),
        ("(name >= 1 > 2)", DanglingOperator { op: ">", pos: 11 }),
        ("name = a and > 1", DanglingOperator { op: ">", pos: 13 }),
    ]);
}

#[test]
fn missing_values() {
    let missing = |op: &'static str, pos| MissingValue {
        field: s("name"),
        op,
        pos,
    };
    check(&[
        ("name =", missing("=", 5)),
        ("name <", missing("<", 5)),
        ("name = and status = up", missing("=", 5)),
        ("name != OR status = up", missing("!=", 5)),
        ("(name = )", missing("=", 6)),
        ("name = (a)", missing("=", 5)),
        ("name = = a", missing("=", 5)),
        ("name = sortby name", missing("=", 5)),
    ]);
}

#[test]
fn values_that_do_not_fit_their_field() {
    let invalid = |field: &str, value: &str, expected: &str, pos| InvalidValue {
        field: s(field),
        value: s(value),
        expected: s(expected),
        pos,
    };
    let statuses = "one of down, image_locked, migrating, not_responding, paused, \
                    powering_down, powering_up, reboot_in_progress, restoring_state, \
                    saving_state, suspended, unassigned, unknown, up, wait_for_launch";
    let dates = "a date such as 2024-01-02 or 2024-01-02T10:00, or unix seconds";
    check(&[
        (
            "status = running",
            invalid("status", "running", statuses, 9),
        ),
        ("status = x*", invalid("status", "x*", statuses, 9)),
        ("memory > lots", invalid("memory", "lots", "a number", 9)),
        ("memory < 10*", invalid("memory", "10*", "a number", 9)),
        (
            "creationdate > yesterday",
            invalid("creationdate", "yesterday", dates, 15),
        ),
        (
            "creationdate > 2024-02-30",
            invalid("creationdate", "2024-02-30", dates, 15),
        ),
        (
            "has_illegal_images = maybe",
            invalid("has_illegal_images", "maybe", "true or false", 21),
        ),
        (
            "Hosts.status = running",
            invalid("Hosts.status", "running", HOST_STATUSES, 15),
        ),
    ]);
    for fine in [
        "status = UP",
        "status = *down",
        "status != powering*",
        "memory = 1*",
        "creationdate = 2024*",
        "creationdate > 0",
    ] {
        vms_query(fine);
    }
}

const HOST_STATUSES: &str = "one of connecting, down, error, initializing, install_failed, \
                             installing, installing_os, kdumping, maintenance, non_operational, \
                             non_responsive, pending_approval, preparing_for_maintenance, \
                             reboot, unassigned, up";

#[test]
fn conditions_expected() {
    let end = |pos| ExpectedCondition {
        found: s("the end of the query"),
        pos,
    };
    check(&[
        ("name = a and", end(12)),
        ("name = a or", end(11)),
        ("(", end(1)),
        (
            "and name = a",
            ExpectedCondition {
                found: s("'and'"),
                pos: 0,
            },
        ),
        (
            "OR",
            ExpectedCondition {
                found: s("'OR'"),
                pos: 0,
            },
        ),
        (
            "()",
            ExpectedCondition {
                found: s("')'"),
                pos: 1,
            },
        ),
        (
            "name = a or or name = b",
            ExpectedCondition {
                found: s("'or'"),
                pos: 12,
            },
        ),
        (
            "(sortby name)",
            ExpectedCondition {
                found: s("'sortby'"),
                pos: 1,
            },
        ),
        (
            "name = a and page 2",
            ExpectedCondition {
                found: s("'page'"),
                pos: 13,
            },
        ),
    ]);
}

#[test]
fn nesting_is_limited() {
    let nested = |depth: usize| format!("{}name = a{}", "(".repeat(depth), ")".repeat(depth));
    vms_query(&nested(64));
    check(&[(&nested(65), TooDeep { limit: 64, pos: 64 })]);
    let deep = "(".repeat(100_000);
    assert_eq!(vms_error(&deep), TooDeep { limit: 64, pos: 64 });
}

#[test]
fn sortby_clauses() {
    check(&[
        ("sortby", MissingSortField { pos: 0 }),
        ("name = a sortby", MissingSortField { pos: 9 }),
        ("sortby page 2", MissingSortField { pos: 0 }),
        ("sortby (name)", MissingSortField { pos: 0 }),
        (
            "sortby bogus",
            UnknownSortField {
                field: s("bogus"),
                object: "Vms",
                pos: 7,
            },
        ),
        (
            "sortby Hosts.name",
            UnknownSortField {
                field: s("Hosts.name"),
                object: "Vms",
                pos: 7,
            },
        ),
        (
            "sortby name sortby id",
            DuplicateClause {
                clause: "sortby",
                pos: 12,
            },
        ),
    ]);
}

#[test]
fn page_clauses() {
    let invalid = |value: &str, pos| InvalidPage {
        value: s(value),
        pos,
    };
    check(&[
        ("page", MissingPage { pos: 0 }),
        ("page sortby name", MissingPage { pos: 0 }),
        ("name = a page", MissingPage { pos: 9 }),
        ("page 0", invalid("0", 5)),
        ("page -1", invalid("-1", 5)),
        ("page x", invalid("x", 5)),
        ("page 1.5", invalid("1.5", 5)),
        ("page 99999999999", invalid("99999999999", 5)),
        ("page (", invalid("(", 5)),
        ("page \"2\"", invalid("\"2\"", 5)),
        (
            "page 1 page 2",
            DuplicateClause {
                clause: "page",
                pos: 7,
            },
        ),
    ]);
}

#[test]
fn nothing_but_clauses_after_clauses() {
    let after = |found: &str, pos| UnexpectedToken {
        found: s(found),
        expected: "'sortby', 'page' or the end of the query",
        pos,
    };
    check(&[
        ("sortby name name = a", after("'name'", 12)),
        ("page 2 (", after("'('", 7)),
        ("sortby name asc desc", after("'desc'", 16)),
        ("page 2 = 3", after("'='", 7)),
        ("page 2)", UnmatchedParen { pos: 6 }),
        (
            "(name = a sortby name)",
            UnexpectedToken {
                found: s("'sortby'"),
                expected: "')'",
                pos: 10,
            },
        ),
    ]);
}

#[test]
fn messages_say_what_and_where() {
    let deep = format!("{}a", "(".repeat(70));
    let cases = [
        (
            "name = \"abc",
            "unbalanced quote: the '\"' at position 7 is never closed",
        ),
        (
            "(name = a",
            "unbalanced parenthesis: the '(' at position 0 is never closed",
        ),
        (
            "name = a)",
            "unbalanced parenthesis: the ')' at position 8 has no matching '('",
        ),
        (
            "name ! a",
            "incomplete operator '!' at position 5: expected '!='",
        ),
        ("Foo: name = a", "unknown object type 'Foo' at position 0"),
        (
            "Hosts: name = a",
            "object type 'Hosts' at position 0 does not match the searched collection 'Vms'",
        ),
        (
            "Clusters.name = a",
            "'Clusters' at position 0 cannot be joined with 'Vms'",
        ),
        ("bogus = 1", "unknown field 'bogus' for Vms at position 0"),
        (
            "= a",
            "dangling operator '=' at position 0: no field before it",
        ),
        (
            "name =",
            "missing value for field 'name' after operator '=' at position 5",
        ),
        (
            "memory > lots",
            "invalid value 'lots' for field 'memory' at position 9: expected a number",
        ),
        (
            "name = a and",
            "expected a condition at position 12, found the end of the query",
        ),
        (
            deep.as_str(),
            "parentheses nest deeper than 64 levels at position 64",
        ),
        ("sortby", "missing field after 'sortby' at position 0"),
        (
            "sortby bogus",
            "unknown sortby field 'bogus' for Vms at position 7",
        ),
        ("page", "missing page number after 'page' at position 0"),
        (
            "page 0",
            "invalid page number '0' at position 5: expected an integer of at least 1",
        ),
        ("page 1 page 2", "duplicate 'page' clause at position 7"),
        (
            "page 2 x",
            "unexpected 'x' at position 7: expected 'sortby', 'page' or the end of the query",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(vms_error(text).to_string(), message, "{text:?}");
    }
    let boxed: Box<dyn std::error::Error> = Box::new(vms_error("page 0"));
    assert!(boxed.to_string().starts_with("invalid page number"));
}
