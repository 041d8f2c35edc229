"""<Class>.get_all_records_where(expr) / get_all_where(expr) with xapi's expression language."""

import pytest
import XenAPI

from xapitest import new_vm, unique

PREFIX = unique("where")


@pytest.fixture(scope="module")
def vms(x):
    """Four VMs with known names / states: a (running), b (halted), c (halted, odd description), d (template)."""
    a = new_vm(x, f"{PREFIX}-a")
    b = new_vm(x, f"{PREFIX}-b")
    c = new_vm(x, f"{PREFIX}-c")
    d = new_vm(x, f"{PREFIX}-d")
    x.VM.set_name_description(c, "has spaces, (parens) and = signs")
    x.VM.set_is_a_template(d, True)
    x.VM.start(a, False, False)
    yield {"a": a, "b": b, "c": c, "d": d}
    x.VM.hard_shutdown(a)


def where(x, expr):
    recs = x.VM.get_all_records_where(expr)
    refs = x.VM.get_all_where(expr)
    assert isinstance(recs, dict) and isinstance(refs, list)
    assert set(recs) == set(refs), expr
    return recs


def expected(x, pred):
    return {r for r, rec in x.VM.get_all_records().items() if pred(rec)}


def mine(refs, vms):
    return {k for k, v in vms.items() if v in refs}


def test_equality_on_string_field(x, vms):
    recs = where(x, f'field "name_label"="{PREFIX}-b"')
    assert set(recs) == {vms["b"]}
    assert recs[vms["b"]] == x.VM.get_record(vms["b"])


def test_equality_on_enum_field(x, vms):
    got = set(where(x, 'field "power_state"="Running"'))
    assert got == expected(x, lambda r: r["power_state"] == "Running")
    assert vms["a"] in got and vms["b"] not in got


def test_equality_on_bool_field(x, vms):
    got = set(where(x, 'field "is_a_template"="true"'))
    assert got == expected(x, lambda r: r["is_a_template"])
    assert vms["d"] in got and vms["a"] not in got


def test_and(x, vms):
    got = set(where(x, 'field "power_state"="Halted" and field "is_a_template"="false"'))
    assert got == expected(x, lambda r: r["power_state"] == "Halted" and not r["is_a_template"])
    assert mine(got, vms) == {"b", "c"}


def test_or(x, vms):
    got = set(where(x, f'field "name_label"="{PREFIX}-a" or field "name_label"="{PREFIX}-d"'))
    assert got == {vms["a"], vms["d"]}


def test_not(x, vms):
    got = set(where(x, 'not (field "is_a_template"="true")'))
    assert got == expected(x, lambda r: not r["is_a_template"])


def test_parentheses_and_nesting(x, vms):
    expr = (f'(field "name_label"="{PREFIX}-a" or field "name_label"="{PREFIX}-b" or field "name_label"="{PREFIX}-c") '
            f'and not (field "power_state"="Running")')
    assert mine(set(where(x, expr)), vms) == {"b", "c"}
    expr2 = f'field "name_label"="{PREFIX}-a" or (field "name_label"="{PREFIX}-d" and field "is_a_template"="true")'
    assert mine(set(where(x, expr2)), vms) == {"a", "d"}


def test_true_matches_everything(x, vms):
    assert set(where(x, "true")) == set(x.VM.get_all())


def test_no_match(x, vms):
    assert where(x, 'field "name_label"="no such VM at all"') == {}


def test_special_characters_in_literals(x, vms):
    got = set(where(x, 'field "name_description"="has spaces, (parens) and = signs"'))
    assert got == {vms["c"]}


def test_literal_on_the_left_and_free_whitespace(x, vms):
    """xapi's grammar is `value = value`, either side a literal or a field."""
    got = set(where(x, f'  "{PREFIX}-c"  =  field "name_label"  '))
    assert got == {vms["c"]}


def test_false_matches_nothing(x, vms):
    assert where(x, "false") == {}
    assert set(where(x, "not false")) == set(x.VM.get_all())


def test_ref_field(x, vms):
    host = x.host.get_all()[0]
    got = set(where(x, f'field "resident_on"="{host}"'))
    assert got == expected(x, lambda r: r["resident_on"] == host)
    assert vms["a"] in got


def test_other_classes(x):
    srs = x.SR.get_all_records()
    ref, some = next(iter(srs.items()))
    got = x.SR.get_all_records_where(f'field "uuid"="{some["uuid"]}"')
    assert set(got) == {ref}
    assert got[ref]["uuid"] == some["uuid"]
    hosts = x.host.get_all_where('field "enabled"="true"')
    assert hosts == [h for h, r in x.host.get_all_records().items() if r["enabled"]]


def test_bad_expression_is_an_error(x):
    for bad in ['field "name_label"=', "(((", 'field name_label="x"', "field \"name_label\"=\"x\" and"]:
        with pytest.raises(XenAPI.Failure):
            x.VM.get_all_records_where(bad)
