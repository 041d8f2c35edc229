use super::{vms_query, Fake};
use crate::search::{Query, Subject, VMS};

fn names(items: &[Fake]) -> Vec<String> {
    items.iter().map(Fake::name).collect()
}

fn sorted(text: &str, mut items: Vec<Fake>) -> Vec<String> {
    vms_query(text).sort_subjects(&mut items);
    names(&items)
}

fn lettered() -> Vec<Fake> {
    ["b", "C", "a"].into_iter().map(Fake::named).collect()
}

#[test]
fn sortby_and_page_are_reported() {
    let cases = [
        ("name = a", None, None),
        ("sortby name", Some(("name", false)), None),
        ("sortby NAME asc", Some(("name", false)), None),
        ("SortBy memory DESC", Some(("memory", true)), None),
        ("page 3", None, Some(3)),
        (
            "name = a sortby name desc page 2",
            Some(("name", true)),
            Some(2),
        ),
        (
            "Vms: page 2 sortby uptime",
            Some(("uptime", false)),
            Some(2),
        ),
        ("status = up PAGE 4294967295", None, Some(u32::MAX)),
    ];
    for (text, sort, page) in cases {
        let query = vms_query(text);
        assert_eq!(query.sort(), sort, "{text}");
        assert_eq!(query.page(), page, "{text}");
    }
}

#[test]
fn text_sorts_case_insensitively_unless_asked() {
    assert_eq!(sorted("sortby name", lettered()), ["a", "b", "C"]);
    assert_eq!(sorted("sortby name asc", lettered()), ["a", "b", "C"]);
    assert_eq!(sorted("sortby name desc", lettered()), ["C", "b", "a"]);
    let strict = Query::parse("sortby name", &VMS, true).unwrap();
    let mut items = lettered();
    strict.sort_subjects(&mut items);
    assert_eq!(names(&items), ["C", "a", "b"]);
}

#[test]
fn numbers_sort_numerically() {
    let items = || {
        [1024.0, 512.0, 4096.0]
            .into_iter()
            .map(|m| Fake::named(&m.to_string()).number("memory", m))
            .collect::<Vec<_>>()
    };
    assert_eq!(sorted("sortby memory", items()), ["512", "1024", "4096"]);
    assert_eq!(
        sorted("sortby memory desc", items()),
        ["4096", "1024", "512"]
    );
}

#[test]
fn dates_and_booleans_sort_by_value() {
    let dated = || {
        [30, 10, 20]
            .into_iter()
            .map(|d| Fake::named(&d.to_string()).date("creationdate", d))
            .collect::<Vec<_>>()
    };
    assert_eq!(sorted("sortby creationdate", dated()), ["10", "20", "30"]);
    let flagged = vec![
        Fake::named("yes").flag("has_illegal_images", true),
        Fake::named("no").flag("has_illegal_images", false),
    ];
    assert_eq!(sorted("sortby has_illegal_images", flagged), ["no", "yes"]);
}

#[test]
fn missing_values_sort_last_and_ties_keep_their_order() {
    let items = || {
        vec![
            Fake::named("none1"),
            Fake::named("up1").text("status", "up"),
            Fake::named("down").text("status", "down"),
            Fake::named("none2"),
            Fake::named("up2").text("status", "UP"),
        ]
    };
    assert_eq!(
        sorted("sortby status", items()),
        ["down", "up1", "up2", "none1", "none2"]
    );
    assert_eq!(
        sorted("sortby status desc", items()),
        ["up1", "up2", "down", "none1", "none2"]
    );
    assert_eq!(
        sorted("status = up", items()),
        ["none1", "up1", "down", "none2", "up2"]
    );
}

#[test]
fn multi_valued_fields_sort_by_their_first_value() {
    let items = vec![
        Fake::named("z-first").text("tag", "z").text("tag", "a"),
        Fake::named("m-first").text("tag", "m"),
    ];
    assert_eq!(sorted("sortby tag", items), ["m-first", "z-first"]);
}

#[test]
fn sort_keys_serve_other_containers() {
    let query = vms_query("sortby name desc");
    let owned = lettered();
    let mut refs: Vec<&Fake> = owned.iter().collect();
    query.sort_subjects(&mut refs);
    assert_eq!(
        refs.iter().map(|f| f.name()).collect::<Vec<_>>(),
        ["C", "b", "a"]
    );
    let mut boxed: Vec<Box<dyn Subject>> = lettered()
        .into_iter()
        .map(|f| Box::new(f) as Box<dyn Subject>)
        .collect();
    query.sort_subjects(&mut boxed);
    let first = boxed.first().map(|b| b.values("name"));
    assert_eq!(
        first,
        Some(vec![crate::search::FieldValue::Text("C".into())])
    );
    let mut pairs: Vec<(usize, Fake)> = lettered().into_iter().enumerate().collect();
    pairs.sort_by_cached_key(|(_, f)| query.sort_key(f));
    assert_eq!(pairs.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 0, 2]);
}
