"""The AMI wire format: whole packets out of arbitrary reads, and actions that cannot smuggle headers."""

from __future__ import annotations

import pytest

from crm_hub_plugins.telephony.ami import AMIDecoder, OriginateRequest, encode_action, login_action, originate_action
from hub.core.errors import BadInput

NAME_PACKET = (
    "Event: Newchannel\r\nChannel: PJSIP/trunk-00000001\r\nCallerIDNum: 79161234567\r\n"
    "CallerIDName: Иванов Пётр\r\nLinkedid: 1.1\r\nUniqueid: 1.1\r\n\r\n"
).encode()


def test_banner_is_remembered_and_not_taken_for_a_packet() -> None:
    decoder = AMIDecoder()
    packets = decoder.feed(b"Asterisk Call Manager/5.0.1\r\n" + NAME_PACKET)
    assert decoder.banner == "Asterisk Call Manager/5.0.1"
    assert [p["Event"] for p in packets] == ["Newchannel"]


@pytest.mark.parametrize("offset", range(1, len(NAME_PACKET)))
def test_cyrillic_name_split_at_any_byte_decodes_whole(offset: int) -> None:
    decoder = AMIDecoder()
    first = decoder.feed(b"Asterisk Call Manager/5.0.1\r\n" + NAME_PACKET[:offset])
    second = decoder.feed(NAME_PACKET[offset:])
    [packet] = first + second
    assert packet["CallerIDName"] == "Иванов Пётр"


def test_byte_by_byte_stream_of_many_packets_decodes_in_order() -> None:
    decoder = AMIDecoder()
    stream = b"Asterisk Call Manager/2.10.4\r\n" + NAME_PACKET * 3 + b"Response: Success\r\nPing: Pong\r\n\r\n"
    packets = [p for byte in stream for p in decoder.feed(bytes([byte]))]
    assert [p.get("Event") or p.get("Response") for p in packets] == ["Newchannel"] * 3 + ["Success"]


def test_lf_only_line_ends_are_accepted() -> None:
    [packet] = AMIDecoder().feed(b"Event: Hangup\nCause: 16\nCause-txt: Normal Clearing\n\n")
    assert packet == {"Event": "Hangup", "Cause": "16", "Cause-txt": "Normal Clearing"}


def test_old_response_follows_keeps_its_output_including_blank_lines() -> None:
    data = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\nline one\r\n\r\nline two\r\n--END COMMAND--\r\n\r\n"
    )
    [packet] = AMIDecoder().feed(data + NAME_PACKET)[:1]
    assert packet["Response"] == "Follows"
    assert packet["ActionID"] == "7"
    assert packet["Output"] == "line one\nline two"


def test_malformed_packet_is_counted_and_skipped() -> None:
    decoder = AMIDecoder()
    packets = decoder.feed(b"garbage without colon\r\nmore garbage\r\n\r\n" + NAME_PACKET)
    assert [p["Event"] for p in packets] == ["Newchannel"]
    assert decoder.malformed == 1


def test_windows_1251_caller_name_is_still_readable() -> None:
    data = "Event: Newchannel\r\nCallerIDName: Иванов\r\n\r\n".encode("cp1251")
    [packet] = AMIDecoder().feed(data)
    assert packet["CallerIDName"] == "Иванов"


def test_originate_is_async_and_carries_the_action_id() -> None:
    request = OriginateRequest(
        channel="PJSIP/101", exten="89161234567", context="from-internal", variables={"HUB_CALL": "1"}
    )
    [packet] = AMIDecoder().feed(originate_action(request, "abc-1"))
    assert packet["Action"] == "Originate"
    assert (packet["ActionID"], packet["Async"], packet["Timeout"]) == ("abc-1", "true", "30000")
    assert packet["Variable"] == "HUB_CALL=1"


def test_a_line_break_in_a_value_is_refused_and_the_secret_not_echoed() -> None:
    with pytest.raises(BadInput) as error:
        login_action("hub", "s3cret\r\nAction: Originate", "1")
    assert "s3cret" not in str(error.value)
    with pytest.raises(BadInput):
        encode_action("Originate", {"Exten": "101\nChannel: evil"})
