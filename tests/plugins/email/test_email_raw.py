"""Mail that arrives other than by IMAP (``hub demo``, a saved .eml) goes through the same parsing and matching."""

from __future__ import annotations

from crm_hub_plugins.email.raw import record_message

COMPANY = "sales@torgdom.example"
FIRST = (
    "From: =?utf-8?b?0JzQsNGA0LjRjyDQn9C10YLRgNC+0LLQsA==?= <m.petrova@yandex.ru>\r\n"
    f"To: {COMPANY}\r\n"
    "Subject: =?utf-8?b?0KHRh9GR0YIg4oSWNDE4?=\r\n"
    "Date: Tue, 17 Nov 2026 10:05:00 +0300\r\n"
    "Message-ID: <first@yandex.ru>\r\n"
    "Content-Type: text/plain; charset=windows-1251\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\n"
).encode() + "Оплату провели сегодня.\r\n".encode("cp1251")
ANSWER = (
    f"From: {COMPANY}\r\nTo: m.petrova@yandex.ru\r\nSubject: Re: Счёт\r\n"
    "Date: Tue, 17 Nov 2026 11:00:00 +0300\r\nMessage-ID: <answer@torgdom.example>\r\n"
    "In-Reply-To: <first@yandex.ru>\r\nReferences: <first@yandex.ru>\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nПолучили, спасибо!\r\n"
).encode()
ROBOT = (
    f"From: noreply@bank.example\r\nTo: {COMPANY}\r\nSubject: Выписка\r\nMessage-ID: <robot@bank.example>\r\n\r\n.\r\n"
).encode()


def test_a_conversation_is_one_thread_on_the_clients_card_stored_once_and_robots_are_left_out(embedded):
    hub = embedded.hub()
    for _ in range(2):  # read twice: stored once
        for data in (FIRST, ANSWER, ROBOT):
            record_message(hub, data, company_addresses=[COMPANY], mailbox=COMPANY)
    [client] = hub.find_clients(email="m.petrova@yandex.ru")
    emails = [i for i in hub.timeline(client.id, kinds=["interaction"]) if i.channel == "email"]
    assert sorted((i.fields["direction"], i.fields["body"]) for i in emails) == [
        ("in", "Оплату провели сегодня."),
        ("out", "Получили, спасибо!"),
    ]
    assert {i.fields["thread"] for i in emails} == {"first@yandex.ru"}
    assert hub.find_clients(email="noreply@bank.example") == []
