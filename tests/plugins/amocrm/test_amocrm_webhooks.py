"""amoCRM webhooks: every documented body parses into hints; malformed bodies are refused clearly."""

from __future__ import annotations

import pytest
from amocrm_testing import fixture_json, fixture_text

from crm_hub_plugins.amocrm.webhooks import encode_nested_form, parse_nested_form, parse_webhook
from hub.core.errors import BadInput


def test_captured_contact_add_body_becomes_one_contact_hint_with_its_account() -> None:
    [hint] = parse_webhook(fixture_text("webhook_contacts_add_raw_body.txt"))
    assert (hint.entity, hint.action, hint.id) == ("contact", "add", "37054081")
    assert (hint.subdomain, hint.account_id, hint.account) == ("etesttask", "32427762", "etesttask")
    assert hint.data["name"] == "Абиба абибович"


def test_captured_contact_update_body_carries_phone_email_and_position_fields() -> None:
    [hint] = parse_webhook(fixture_text("webhook_contacts_update_raw_body.txt").encode())
    by_code = {cf.code: cf for cf in hint.custom_fields}
    assert by_code["PHONE"].values == ({"value": "333", "enum": "718321"},)
    assert by_code["EMAIL"].texts() == ["444"]
    assert by_code["POSITION"].texts() == ["Директор"]
    assert by_code["POSITION"].name == "Должность"


def test_documented_update_rendered_back_to_form_parses_to_the_same_hint() -> None:
    doc = fixture_json("webhook_contacts_update_doc.json")
    [hint] = parse_webhook(encode_nested_form(doc))
    assert (hint.entity, hint.action, hint.id, hint.account) == ("contact", "update", "17611273", "test")
    assert hint.custom_fields[0].values == ({"value": "1234567890", "enum": "552476"},)


def test_date_field_as_bare_value_and_radio_button_as_single_object_are_accepted() -> None:
    body = (
        "account[id]=1&account[subdomain]=acme"
        "&leads[update][0][id]=5&leads[update][0][custom_fields][0][id]=10"
        "&leads[update][0][custom_fields][0][values][0]=1542067200"
        "&leads[update][0][custom_fields][1][id]=11"
        "&leads[update][0][custom_fields][1][values][value]=Да&leads[update][0][custom_fields][1][values][enum]=7"
    )
    [hint] = parse_webhook(body)
    date, radio = hint.custom_fields
    assert date.texts() == ["1542067200"]
    assert radio.values == ({"value": "Да", "enum": "7"},)


def test_custom_fields_as_one_object_instead_of_a_list_are_accepted() -> None:
    body = (
        "contacts[update][0][id]=9&contacts[update][0][custom_fields][id]=3"
        "&contacts[update][0][custom_fields][values][0][value]=x"
    )
    [hint] = parse_webhook(body)
    assert hint.custom_fields[0].texts() == ["x"]


def test_company_arrives_as_contact_with_type_company() -> None:
    [hint] = parse_webhook("account[id]=1&contacts[delete][0][id]=77&contacts[delete][0][type]=company")
    assert (hint.entity, hint.action, hint.id) == ("company", "delete", "77")


def test_lead_status_change_and_several_entities_in_one_body() -> None:
    body = (
        "account[id]=1&leads[status][0][id]=25399013&leads[status][0][status_id]=142"
        "&leads[status][0][old_status_id]=7039101&leads[add][0][id]=1&leads[add][1][id]=2"
    )
    hints = parse_webhook(body)
    assert [(h.action, h.id) for h in hints] == [("status", "25399013"), ("add", "1"), ("add", "2")]
    assert hints[0].data["status_id"] == "142"


def test_note_webhooks_in_both_nestings_name_the_parent_and_type() -> None:
    double = (
        "account[subdomain]=a&leads[note][0][note][id]=5&leads[note][0][note][element_id]=202"
        "&leads[note][0][note][note_type]=10&leads[note][0][note][element_type]=2"
    )
    single = (
        "account[subdomain]=a&contacts[note][0][id]=6&contacts[note][0][element_id]=40700289"
        "&contacts[note][0][note_type]=4"
    )
    [call] = parse_webhook(double)
    [note] = parse_webhook(single)
    assert (call.entity, call.id, call.parent_entity, call.parent_id, call.note_type) == (
        "note",
        "5",
        "leads",
        "202",
        "call_in",
    )
    assert (note.parent_entity, note.parent_id, note.note_type) == ("contacts", "40700289", "common")


def test_scalar_and_nested_values_on_one_path_do_not_break_parsing() -> None:
    body = (
        "contacts[note][0][note][id]=60864725&contacts[note][0][note][type]=3"
        "&contacts[note][0][note][type][message_uuid]=70f31734&contacts[note][0][note][element_id]=40700289"
    )
    [hint] = parse_webhook(body)
    assert hint.id == "60864725" and hint.data["type"]["message_uuid"] == "70f31734"


def test_task_webhook_names_its_parent_entity() -> None:
    [hint] = parse_webhook(
        "account[id]=1&task[add][0][id]=56981&task[add][0][element_id]=180765&task[add][0][element_type]=2"
    )
    assert (hint.entity, hint.parent_entity, hint.parent_id) == ("task", "leads", "180765")


def test_php_style_parser_appends_empty_brackets_and_closes_index_gaps() -> None:
    assert parse_nested_form("a[]=1&a[]=2&b[3]=x&b[1]=y") == {"a": ["1", "2"], "b": ["y", "x"]}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("", "names no known entity"),
        ('{"contacts": {"add": [{"id": 1}]}}', "not form-encoded"),
        ("account[id]=1", "names no known entity"),
        ("contacts=1", "has no actions"),
        ("contacts[add][0][name]=x", "no numeric id"),
        ("contacts[add][0][id]=abc", "no numeric id"),
        ("contacts[add]]=1", "not of the form"),
    ],
)
def test_malformed_bodies_are_refused_with_a_clear_message(body: str, says: str) -> None:
    with pytest.raises(BadInput, match=says):
        parse_webhook(body)
