"""PHP-style nested form encoding, as Bitrix24 reads parameters and writes event bodies."""

from __future__ import annotations

from urllib.parse import unquote

from bitrix24_payloads import fixture_text

from plugins.bitrix24.formencoding import decode, encode


def test_nested_fields_and_lists_encode_with_bracketed_keys() -> None:
    query = encode({"fields": {"NAME": "Иван", "PHONE": [{"VALUE": "+79161234567", "VALUE_TYPE": "WORK"}]}})
    assert unquote(query) == "fields[NAME]=Иван&fields[PHONE][0][VALUE]=+79161234567&fields[PHONE][0][VALUE_TYPE]=WORK"


def test_values_with_separators_survive_a_round_trip() -> None:
    params = {"filter": {">ID": "$result[p0][49][ID]"}, "fields": {"COMMENTS": "a=b&c=d; 100% «ок»"}}
    assert decode(encode(params)) == params


def test_none_is_left_out_and_booleans_become_php_integers() -> None:
    assert decode(encode({"a": None, "b": True, "c": False, "d": 0})) == {"b": "1", "c": "0", "d": "0"}


def test_raw_event_body_decodes_into_nested_dicts() -> None:
    body = decode(fixture_text("event_ONCRMCONTACTADD_raw_body.txt").strip())
    assert body["event"] == "ONCRMCONTACTADD"
    assert body["data"] == {"FIELDS": {"ID": "134806"}}
    assert body["auth"]["application_token"] == "3c6c9248ec54af6bea1159b43ee0ab32"
    assert body["auth"]["scope"] == "crm,placement,user_brief"
    assert body["auth"]["client_endpoint"] == "https://bitrix24-php-sdk-playground.bitrix24.com/rest/"


def test_numbered_keys_become_lists_and_empty_brackets_append() -> None:
    assert decode("select[]=ID&select[]=NAME&f[PHONE][0][VALUE]=1&f[PHONE][1][VALUE]=2") == {
        "select": ["ID", "NAME"],
        "f": {"PHONE": [{"VALUE": "1"}, {"VALUE": "2"}]},
    }


def test_keys_that_only_look_numeric_stay_a_mapping() -> None:
    assert decode("cmd[1]=a&cmd[2]=b") == {"cmd": {"1": "a", "2": "b"}}


def test_plain_key_value_pairs_and_blank_values_are_kept() -> None:
    assert decode("halt=0&auth=&start=-1") == {"halt": "0", "auth": "", "start": "-1"}
