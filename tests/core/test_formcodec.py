"""The core PHP nested-form codec: Bitrix24 parameters and events, amoCRM webhooks; linear and bounded."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote

import anyio
import pytest

from hub.core.errors import BadInput
from hub.core.formcodec import FormLimits, decode, encode, find_pair, parse_off_loop

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_text(name: str) -> str:
    return (FIXTURES / "bitrix24" / name).read_text(encoding="utf-8")


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


def test_amocrm_style_sorted_lists_close_gaps_and_keep_scalars_beside_containers() -> None:
    body = "a[]=1&a[]=2&b[3]=x&b[1]=y&t[type]=3&t[type][uuid]=u"
    assert decode(body, lists="sorted", scalar_key="_value") == {
        "a": ["1", "2"],
        "b": ["y", "x"],
        "t": {"type": {"_value": "3", "uuid": "u"}},
    }


def test_empty_brackets_append_after_the_highest_index_as_php_does() -> None:
    assert decode("a[5]=x&a[]=y", lists="none") == {"a": {"5": "x", "6": "y"}}


def test_the_top_level_stays_a_mapping_even_with_numeric_keys() -> None:
    assert decode("0=a&1=b", lists="sorted") == {"0": "a", "1": "b"}


def test_unicode_digits_are_not_list_indexes() -> None:
    assert decode("a[²]=x", lists="sorted") == {"a": {"²": "x"}}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("a=1&" * 30 + "b=2", "more than 20 key=value pairs"),
        ("a" + "[x]" * 9 + "=1", "deeper than 8 levels"),
        ("k" * 65 + "=1", "key of 65 characters"),
        (b"a=\xff\xfe", "not UTF-8"),
        ("a=%ff%fe", "not form-encoded"),
    ],
)
def test_bodies_beyond_the_bounds_are_refused_with_a_clear_message(body: str | bytes, says: str) -> None:
    with pytest.raises(BadInput, match=says):
        decode(body, limits=FormLimits(max_pairs=20, max_depth=8, max_key_length=64))


def test_strict_mode_refuses_malformed_keys_that_lenient_mode_keeps_flat() -> None:
    assert decode("a[b]c=1") == {"a[b]c": "1"}
    for body in ("a[b]c=1", "[x]=1", "a]=1", "a[[b]]=1", "novalue"):
        with pytest.raises(BadInput):
            decode(body, strict=True)


def _best_time(body: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        decode(body, limits=FormLimits(max_pairs=200_000))
        best = min(best, time.perf_counter() - started)
    return best


def test_decoding_appended_pairs_is_linear_in_their_number() -> None:
    # The quadratic decoder took 16x as long for 4x the pairs; a linear one about 4x (allow noise up to 8x).
    small, large = "&".join(["a[]=x"] * 20_000), "&".join(["a[]=x"] * 80_000)
    ratio = _best_time(large) / _best_time(small)
    assert ratio < 8, f"4x the pairs took {ratio:.1f}x as long"


def test_a_token_is_found_without_decoding_and_with_encoded_brackets() -> None:
    assert find_pair("a[]=1&auth[application_token]=t%2B1&b=2", "auth[application_token]") == "t+1"
    assert find_pair("auth%5Bapplication_token%5D=abc", "auth[application_token]") == "abc"
    assert find_pair("xauth[application_token]=abc", "auth[application_token]") is None
    assert find_pair(b"\xff&auth[application_token]=t", "auth[application_token]") == "t"


def test_big_bodies_are_parsed_on_a_worker_thread() -> None:
    import threading

    seen: list[str] = []

    def parse(body: str) -> int:
        seen.append(threading.current_thread().name)
        return len(body)

    async def main() -> None:
        await parse_off_loop(parse, "x")
        await parse_off_loop(parse, "x" * 100_000)

    anyio.run(main)
    assert seen[0] == threading.main_thread().name and seen[1] != threading.main_thread().name
