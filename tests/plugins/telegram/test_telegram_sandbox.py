"""The Bot API sandbox answers as https://core.telegram.org/bots/api says, driven by pyTelegramBotAPI."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import telebot
from telebot import apihelper
from telebot.apihelper import ApiTelegramException


@pytest.fixture
def client(sandbox) -> Iterator[telebot.TeleBot]:
    saved = apihelper.API_URL, apihelper.FILE_URL
    apihelper.API_URL = sandbox.url + "/bot{0}/{1}"
    apihelper.FILE_URL = sandbox.url + "/file/bot{0}/{1}"
    try:
        yield telebot.TeleBot(sandbox.token, threaded=False)
    finally:
        apihelper.API_URL, apihelper.FILE_URL = saved


def error_of(call) -> ApiTelegramException:
    with pytest.raises(ApiTelegramException) as caught:
        call()
    return caught.value


def test_get_me_describes_the_bot(client, sandbox):
    me = client.get_me()
    assert me.is_bot and me.id == sandbox.bot.bot_id and me.username == "hub_sandbox_bot"


def test_a_wrong_token_is_unauthorized_and_an_unknown_method_not_found(sandbox):
    wrong = sandbox.http.post(f"/bot{sandbox.bot.bot_id}:{'x' * 35}/getMe")
    assert wrong.status_code == 401 and wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    unknown = sandbox.call("getEverything")
    assert unknown.status_code == 404 and unknown.json()["description"] == "Not Found"


def test_an_offset_confirms_every_update_before_it(client, sandbox):
    for text in ("один", "два", "три"):
        sandbox.user_writes(501, text=text, first_name="Анна")
    updates = client.get_updates(long_polling_timeout=1)
    assert [u.message.text for u in updates] == ["один", "два", "три"]
    assert [u.message.text for u in client.get_updates(long_polling_timeout=1)] == [
        "один",
        "два",
        "три",
    ]  # not yet confirmed
    assert client.get_updates(offset=updates[-1].update_id + 1, long_polling_timeout=1) == []
    assert client.get_updates(long_polling_timeout=1) == []  # confirmed for good


def test_a_long_poll_returns_as_soon_as_a_message_arrives(client, sandbox):
    threading.Timer(0.3, lambda: sandbox.user_writes(502, text="вы тут?")).start()
    started = time.monotonic()
    updates = client.get_updates(timeout=5, long_polling_timeout=5)
    assert [u.message.text for u in updates] == ["вы тут?"]
    assert time.monotonic() - started < 3


def test_get_updates_is_refused_while_a_webhook_is_set(client):
    client.set_webhook("https://hub.example.ru/webhooks/telegram", secret_token="s3cret_token-0123456789")
    error = error_of(lambda: client.get_updates(long_polling_timeout=1))
    assert error.error_code == 409 and "webhook is active" in error.description
    info = client.get_webhook_info()
    assert info.url == "https://hub.example.ru/webhooks/telegram"
    client.delete_webhook()
    assert client.get_updates(long_polling_timeout=1) == []


def test_a_webhook_must_be_https_and_its_secret_of_allowed_characters(client):
    assert "HTTPS URL" in error_of(lambda: client.set_webhook("http://hub.example.ru/hook")).description
    bad = error_of(lambda: client.set_webhook("https://hub.example.ru/hook", secret_token="не латиница"))
    assert bad.error_code == 400 and "unallowed characters" in bad.description


def test_send_message_refuses_what_telegram_refuses(client, sandbox):
    sandbox.user_writes(503, text="привет")
    assert "text is empty" in error_of(lambda: client.send_message(503, " ")).description
    assert "too long" in error_of(lambda: client.send_message(503, "я" * 4097)).description
    assert "chat not found" in error_of(lambda: client.send_message(999, "кто вы?")).description
    sandbox.http.post("/sandbox/users/503/block")
    blocked = error_of(lambda: client.send_message(503, "ау"))
    assert blocked.error_code == 403 and "blocked by the user" in blocked.description


def test_more_than_a_message_a_second_to_one_chat_is_429_with_retry_after(client, sandbox):
    sandbox.user_writes(504, text="привет")
    for i in range(3):
        client.send_message(504, f"ответ {i}")
    flood = sandbox.call("sendMessage", chat_id=504, text="ещё")
    assert flood.status_code == 429 and flood.json()["parameters"]["retry_after"] >= 1
    assert [m["text"] for m in sandbox.sent_to(504)] == ["ответ 0", "ответ 1", "ответ 2"]


def test_a_shared_file_can_be_fetched_with_get_file(client, sandbox):
    sandbox.user_writes(505, file={"name": "счёт.pdf", "data": "PDF-1.4"}, caption="счёт за май")
    message = client.get_updates(long_polling_timeout=1)[0].message
    assert message.document.file_name == "счёт.pdf" and message.caption == "счёт за май"
    info = client.get_file(message.document.file_id)
    assert client.download_file(info.file_path) == b"PDF-1.4"
    assert "invalid file_id" in error_of(lambda: client.get_file("nope")).description
