use crate::search::{complete, EVENTS, HOSTS, NETWORKS, VMS};

fn vms(partial: &str) -> Vec<String> {
    complete(partial, &VMS)
}

fn field_names() -> Vec<String> {
    VMS.fields.iter().map(|f| f.name.to_string()).collect()
}

const VM_JOINS: [&str; 6] = [
    "Events.",
    "Hosts.",
    "Nics.",
    "Storage.",
    "Templates.",
    "Users.",
];

#[test]
fn an_empty_query_offers_the_prefix_fields_and_cross_references() {
    let mut expected = vec!["Vms:".to_string()];
    expected.extend(field_names());
    expected.extend(VM_JOINS.map(String::from));
    assert_eq!(vms(""), expected);
    assert_eq!(vms("  "), expected);
}

#[test]
fn the_prefix_is_completed_while_typed() {
    assert_eq!(vms("V"), ["Vms:", "vcpus"]);
    assert_eq!(vms("vms"), ["Vms:"]);
    assert_eq!(complete("ho", &HOSTS), ["Hosts:"]);
}

#[test]
fn after_the_prefix_come_fields_and_cross_references() {
    let mut expected = field_names();
    expected.extend(VM_JOINS.map(String::from));
    assert_eq!(vms("Vms:"), expected);
    assert_eq!(vms("Vms: "), expected);
    assert_eq!(vms("Vms: ("), expected);
    assert_eq!(vms("Vms: na"), ["name"]);
    assert_eq!(vms("Vms: NA"), ["name"]);
    assert_eq!(vms("Vms: h"), ["has_illegal_images", "Hosts."]);
    assert_eq!(vms("Vms: name"), ["name"]);
    assert!(vms("Vms: zzz").is_empty());
}

#[test]
fn a_wrong_prefix_offers_nothing() {
    assert!(vms("Hosts: ").is_empty());
    assert!(vms("Bogus: ").is_empty());
}

#[test]
fn cross_references_offer_the_joined_fields() {
    let hosts: Vec<String> = HOSTS
        .fields
        .iter()
        .map(|f| format!("Hosts.{}", f.name))
        .collect();
    assert_eq!(vms("Hosts."), hosts);
    assert_eq!(vms("Vms: Hosts.st"), ["Hosts.status"]);
    assert_eq!(vms("host.st"), ["host.status"]);
    assert_eq!(vms("name = a and Hosts.na"), ["Hosts.name"]);
    assert!(vms("Clusters.").is_empty());
    assert!(vms("Bogus.").is_empty());
}

#[test]
fn after_a_field_come_operators_that_fit_it() {
    assert_eq!(vms("name "), ["=", "!=", "and", "or", "sortby", "page"]);
    assert_eq!(
        vms("memory "),
        ["=", "!=", "<", "<=", ">", ">=", "and", "or", "sortby", "page"]
    );
    assert_eq!(
        vms("creationdate "),
        ["=", "!=", "<", "<=", ">", ">=", "and", "or", "sortby", "page"]
    );
    assert_eq!(
        vms("Hosts.cpus "),
        ["=", "!=", "<", "<=", ">", ">=", "and", "or", "sortby", "page"]
    );
    assert_eq!(vms("memory <"), ["<", "<="]);
    assert_eq!(vms("memory>"), [">", ">="]);
    assert_eq!(vms("name !"), ["!="]);
    assert_eq!(vms("name a"), ["and", "address", "apps", "architecture"]);
}

#[test]
fn after_an_operator_come_the_values_of_enum_and_boolean_fields() {
    let statuses = ["unassigned", "unknown", "up"];
    assert_eq!(vms("status = u"), statuses);
    assert_eq!(vms("status=u"), statuses);
    assert_eq!(vms("status != U"), statuses);
    assert_eq!(vms("Vms: name = my* and status =").len(), 15);
    assert_eq!(vms("Vms: name = my* and status = "), vms("status ="));
    assert_eq!(vms("status = "), vms("status ="));
    assert_eq!(vms("has_illegal_images = "), ["false", "true"]);
    assert_eq!(vms("Hosts.status = main"), ["maintenance"]);
    assert_eq!(
        complete("severity = ", &EVENTS),
        ["alert", "error", "normal", "warning"]
    );
    assert!(vms("name = ").is_empty());
    assert!(vms("memory >= 1").is_empty());
    assert!(vms("name = \"my").is_empty());
}

#[test]
fn after_a_condition_come_connectives_and_clauses() {
    let after = ["and", "or", "sortby", "page"];
    assert_eq!(vms("name = x "), after);
    assert_eq!(vms("status = up "), after);
    assert_eq!(vms("name = \"my vm\""), after);
    assert_eq!(vms("web "), after);
    assert_eq!(vms("(name = x) "), after);
    assert_eq!(vms("name = x o"), ["or", "on_host", "os"]);
    assert_eq!(vms("name = x AN"), ["and"]);
    assert_eq!(vms("name = x s"), ["sortby", "status", "Storage."]);
    assert_eq!(vms("(name = x "), ["and", "or"]);
    assert_eq!(vms("name = x and "), vms("Vms: "));
    assert_eq!(vms("name = x or ("), vms("Vms: "));
}

#[test]
fn clauses_complete_in_turn() {
    assert_eq!(vms("sortby "), field_names());
    assert_eq!(vms("name = x sortby mem"), ["mem_usage", "memory"]);
    assert_eq!(vms("sortby name "), ["asc", "desc", "page"]);
    assert_eq!(vms("sortby name d"), ["desc"]);
    assert_eq!(vms("sortby name desc "), ["page"]);
    assert!(vms("page ").is_empty());
    assert_eq!(vms("page 2 "), ["sortby"]);
    assert!(vms("sortby name page 2 ").is_empty());
    assert_eq!(vms("page 2 sortby name "), ["asc", "desc"]);
    assert_eq!(
        complete("Networks: sortby v", &NETWORKS),
        ["vlanid", "vmnetwork"]
    );
}

#[test]
fn malformed_queries_offer_nothing() {
    for partial in [
        "and ",
        ") ",
        "name = a ) ",
        "sortby bogus ",
        "sortby name bogus ",
        "= ",
        "name = = ",
        "page 2 page ",
        "(sortby ",
        "name = x \"",
    ] {
        assert!(
            vms(partial).is_empty(),
            "{partial:?} gave {:?}",
            vms(partial)
        );
    }
}
