use super::{names_matching, select, vms_query, Fake};
use crate::search::{Query, HOSTS, VMS};

const JAN_1: i64 = 1_704_067_200;
const JAN_2_10H: i64 = 1_704_189_600;
const JAN_3: i64 = 1_704_240_000;

fn fleet() -> Vec<Fake> {
    vec![
        Fake::named("myVm1")
            .text("status", "up")
            .number("memory", 1024.0),
        Fake::named("myVm10")
            .text("status", "down")
            .number("memory", 512.0),
        Fake::named("other")
            .text("status", "up")
            .number("memory", 4096.0),
        Fake::named("my"),
    ]
}

#[test]
fn an_empty_query_or_a_bare_prefix_matches_everything() {
    for text in ["", "   ", "Vms:", "vms:", "VM:", "  vms:  "] {
        assert_eq!(select(text, &fleet()).len(), 4, "{text:?}");
    }
}

#[test]
fn equality_ignores_case_unless_asked() {
    assert_eq!(select("name = MYVM1", &fleet()), ["myVm1"]);
    let strict = Query::parse("name = MYVM1", &VMS, true).unwrap();
    assert!(names_matching(&strict, &fleet()).is_empty());
    let exact = Query::parse("name = myVm1", &VMS, true).unwrap();
    assert_eq!(names_matching(&exact, &fleet()), ["myVm1"]);
}

#[test]
fn stars_match_any_run_of_characters() {
    let cases: &[(&str, &[&str])] = &[
        ("name = my*", &["myVm1", "myVm10", "my"]),
        ("name = *vm1*", &["myVm1", "myVm10"]),
        ("name = *1", &["myVm1"]),
        ("name = m*v*0", &["myVm10"]),
        ("name = *", &["myVm1", "myVm10", "other", "my"]),
        ("name = **", &["myVm1", "myVm10", "other", "my"]),
        ("name = my", &["my"]),
        ("name = my*1*0", &["myVm10"]),
        ("name = *my*my", &[]),
        ("name != my*", &["other"]),
    ];
    for (text, expected) in cases {
        assert_eq!(select(text, &fleet()), *expected, "{text}");
    }
}

#[test]
fn stars_and_case_work_on_non_ascii_text() {
    let items = [Fake::named("Ünïcode-VM"), Fake::named("plain")];
    assert_eq!(select("name = ünï*", &items), ["Ünïcode-VM"]);
    assert_eq!(select("name = *CODE-vm", &items), ["Ünïcode-VM"]);
    let strict = Query::parse("name = ünï*", &VMS, true).unwrap();
    assert!(names_matching(&strict, &items).is_empty());
}

#[test]
fn and_binds_tighter_than_or() {
    let items = [
        Fake::named("a").text("status", "down"),
        Fake::named("b").text("status", "down"),
        Fake::named("c").text("status", "up"),
    ];
    let cases: &[(&str, &[&str])] = &[
        ("name = a or name = b and status = up", &["a"]),
        ("(name = a or name = b) and status = up", &[]),
        ("name = c or name = b and status = down", &["b", "c"]),
        ("status = up and name = c or name = a", &["a", "c"]),
        ("status = up and (name = c or name = a)", &["c"]),
        ("name = a OR name = b AnD status = down", &["a", "b"]),
        ("((name = a))", &["a"]),
    ];
    for (text, expected) in cases {
        assert_eq!(select(text, &items), *expected, "{text}");
    }
}

#[test]
fn juxtaposed_conditions_are_anded() {
    assert_eq!(select("name = other status = up", &fleet()), ["other"]);
    assert!(select("name = other status = down", &fleet()).is_empty());
    assert_eq!(
        select("name = my* (status = down) memory < 600", &fleet()),
        ["myVm10"]
    );
}

#[test]
fn numbers_compare_numerically() {
    let cases: &[(&str, &[&str])] = &[
        ("memory > 1000", &["myVm1", "other"]),
        ("memory >= 1024", &["myVm1", "other"]),
        ("memory < 1024", &["myVm10"]),
        ("memory <= 1024", &["myVm1", "myVm10"]),
        ("memory = 1024.0", &["myVm1"]),
        ("memory = 1e3", &[]),
        ("memory != 1024", &["myVm10", "other", "my"]),
        ("memory = 10*", &["myVm1"]),
        ("memory > -1", &["myVm1", "myVm10", "other"]),
    ];
    for (text, expected) in cases {
        assert_eq!(select(text, &fleet()), *expected, "{text}");
    }
}

#[test]
fn numeric_text_compares_numerically_and_other_text_as_text() {
    let items = [
        Fake::named("nine").text("description", "9"),
        Fake::named("ten").text("description", "10"),
        Fake::named("word").text("description", "Beta"),
    ];
    assert_eq!(select("description > 9", &items), ["ten", "word"]);
    assert_eq!(select("description < 10", &items), ["nine"]);
    assert_eq!(select("description < alpha", &items), ["nine", "ten"]);
    assert_eq!(select("description >= BETA", &items), ["word"]);
    let strict = Query::parse("description >= BETA", &VMS, true).unwrap();
    assert_eq!(names_matching(&strict, &items), ["word"]);
    let strict = Query::parse("description > beta", &VMS, true).unwrap();
    assert!(names_matching(&strict, &items).is_empty());
}

#[test]
fn dates_compare_chronologically_at_their_precision() {
    let items = [
        Fake::named("jan1").date("creationdate", JAN_1),
        Fake::named("jan2").date("creationdate", JAN_2_10H),
        Fake::named("jan3").date("creationdate", JAN_3),
        Fake::named("undated"),
    ];
    let cases: &[(&str, &[&str])] = &[
        ("creationdate > 2024-01-01", &["jan2", "jan3"]),
        ("creationdate = 2024-01-02", &["jan2"]),
        ("creationdate >= 2024-01-02T10:00", &["jan2", "jan3"]),
        ("creationdate < 2024-01-02T10:00", &["jan1"]),
        ("creationdate <= 2024-01-02T10:00", &["jan1", "jan2"]),
        ("creationdate > 2024-01-02T10:00:00Z", &["jan3"]),
        ("creationdate = \"2024-01-02 10:00\"", &["jan2"]),
        ("creationdate = 1704189600", &["jan2"]),
        ("creationdate < 1704189600", &["jan1"]),
        ("creationdate != 2024-01-02", &["jan1", "jan3", "undated"]),
        ("creationdate = 2024-01-0*", &["jan1", "jan2", "jan3"]),
        ("creationdate = *T10:00:00", &["jan2"]),
    ];
    for (text, expected) in cases {
        assert_eq!(select(text, &items), *expected, "{text}");
    }
}

#[test]
fn dates_written_as_text_compare_chronologically() {
    let items = [
        Fake::named("old").text("description", "2023-12-31T23:59"),
        Fake::named("new").text("description", "2024-01-02"),
    ];
    assert_eq!(select("description >= 2024-01-01", &items), ["new"]);
    assert_eq!(select("description < 2024-01-01T00:00", &items), ["old"]);
}

#[test]
fn not_equal_matches_when_no_value_equals() {
    let items = [
        Fake::named("both").text("tag", "prod").text("tag", "web"),
        Fake::named("dev").text("tag", "dev"),
        Fake::named("untagged"),
    ];
    let cases: &[(&str, &[&str])] = &[
        ("tag = web", &["both"]),
        ("tag = prod", &["both"]),
        ("tag != web", &["dev", "untagged"]),
        ("tag != *", &["untagged"]),
        ("tag = *", &["both", "dev"]),
        ("tag > p", &["both"]),
    ];
    for (text, expected) in cases {
        assert_eq!(select(text, &items), *expected, "{text}");
    }
}

#[test]
fn booleans_compare_to_true_or_false() {
    let items = [
        Fake::named("bad").flag("has_illegal_images", true),
        Fake::named("good").flag("has_illegal_images", false),
    ];
    assert_eq!(select("has_illegal_images = true", &items), ["bad"]);
    assert_eq!(select("has_illegal_images = FALSE", &items), ["good"]);
    assert_eq!(select("has_illegal_images != true", &items), ["good"]);
}

#[test]
fn cross_object_conditions_match_through_related_objects() {
    let host = |name: &str, status: &str| Fake::named(name).text("status", status);
    let items = [
        Fake::named("vm1").with("Hosts", host("h1", "up")),
        Fake::named("vm2").with("Hosts", host("h2", "maintenance")),
        Fake::named("vm3"),
        Fake::named("vm4")
            .with("Hosts", host("h1", "up"))
            .with("Hosts", host("h3", "up")),
    ];
    let cases: &[(&str, &[&str])] = &[
        ("Hosts.name = h1", &["vm1", "vm4"]),
        ("hosts.NAME = H*", &["vm1", "vm2", "vm4"]),
        ("host.name = h2", &["vm2"]),
        ("Hosts.name != h1", &["vm2", "vm4"]),
        ("Hosts.status = up and name != vm4", &["vm1"]),
        ("Hosts.status = maintenance or name = vm3", &["vm2", "vm3"]),
        ("Vms.name = vm3", &["vm3"]),
    ];
    for (text, expected) in cases {
        assert_eq!(select(text, &items), *expected, "{text}");
    }
}

#[test]
fn cross_object_conditions_work_from_other_collections() {
    let items = [
        Fake::named("h1").with("Vms", Fake::named("db")),
        Fake::named("h2").with("Vms", Fake::named("web")),
    ];
    let query = Query::parse("Hosts: Vms.name = web", &HOSTS, false).unwrap();
    assert_eq!(names_matching(&query, &items), ["h2"]);
}

#[test]
fn fields_naming_other_objects_are_plain_fields() {
    let items = [
        Fake::named("a").text("cluster", "Default"),
        Fake::named("b").text("cluster", "Intel"),
    ];
    assert_eq!(select("cluster = default", &items), ["a"]);
}

#[test]
fn free_text_matches_any_textual_field() {
    let items = [
        Fake::named("alpha")
            .text("description", "Web server")
            .number("memory", 1024.0),
        Fake::named("beta").text("comment", "db 1024"),
        Fake::named("gamma").text("status", "up"),
    ];
    let cases: &[(&str, &[&str])] = &[
        ("web", &["alpha"]),
        ("WEB", &["alpha"]),
        ("we*er", &["alpha"]),
        ("\"web server\"", &["alpha"]),
        ("1024", &["beta"]),
        ("a", &["alpha", "beta", "gamma"]),
        ("up", &["gamma"]),
        ("web and name = alpha", &["alpha"]),
        ("web or db", &["alpha", "beta"]),
        ("web db", &[]),
        ("nothing", &[]),
    ];
    for (text, expected) in cases {
        assert_eq!(select(text, &items), *expected, "{text}");
    }
    let strict = Query::parse("WEB", &VMS, true).unwrap();
    assert!(names_matching(&strict, &items).is_empty());
}

#[test]
fn quoted_values_keep_spaces_keywords_and_escapes() {
    let items = [
        Fake::named("My VM"),
        Fake::named("and"),
        Fake::named("say \"hi\""),
        Fake::named("back\\slash"),
    ];
    assert_eq!(select("name = \"my vm\"", &items), ["My VM"]);
    assert_eq!(select("name = \"and\"", &items), ["and"]);
    assert_eq!(select("name=\"say \\\"hi\\\"\"", &items), ["say \"hi\""]);
    assert_eq!(select("name = \"back\\\\slash\"", &items), ["back\\slash"]);
    assert_eq!(select("name = \"back\\slash\"", &items), ["back\\slash"]);
}

#[test]
fn operators_need_no_spaces() {
    assert_eq!(select("name=myVm1", &fleet()), ["myVm1"]);
    assert_eq!(select("memory>=1024 name!=other", &fleet()), ["myVm1"]);
    assert_eq!(select("Vms:name=my", &fleet()), ["my"]);
}

#[test]
fn ten_thousand_subjects_evaluate_without_surprises() {
    let items: Vec<Fake> = (0..10_000)
        .map(|i| {
            Fake::named(&format!("vm{i}"))
                .text("status", if i % 2 == 0 { "up" } else { "down" })
                .number("memory", f64::from(i))
        })
        .collect();
    let query = vms_query("name = vm1* and status = up or memory > 9990");
    let hits = items.iter().filter(|vm| query.matches(*vm)).count();
    // vm1, vm10..vm19, vm100..vm199, vm1000..vm1999 are 1111 names, half even;
    // memory 9991..9999 adds nine.
    assert_eq!(hits, 555 + 9);
}
