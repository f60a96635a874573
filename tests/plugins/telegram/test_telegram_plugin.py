"""A bot's private chats land on the client's timeline once; replies from the hub are sent and recorded."""

from __future__ import annotations

import contextlib

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_hub_plugins.telegram.mapping import NotForTheHub, message_observations, user_ref
from crm_hub_plugins.telegram.plugin import bot
from hub.core.events import ClientObservation, SourceRef
from hub.testing import serve_asgi
from hub.web.app import create_app
from tests.conftest import wait_for


def messages(hub, client_id):
    return [i for i in hub.timeline(client_id) if i.kind == "interaction" and i.channel == "message"]


def the_client(hub, user_id):
    found = hub.find_clients(ref=user_ref(bot(hub).account, user_id))
    assert found, f"no client with the Telegram ref of user {user_id}"
    return found[0]


def row(i, phone, name=None):
    return ClientObservation(source=SourceRef(system="excel", entity="row", id=str(i)), name=name, phones=[phone])


def test_a_stranger_who_writes_becomes_a_client_named_from_the_profile(backend, sandbox, telegram_hub):
    hub = telegram_hub()
    sandbox.user_writes(701, text="Здравствуйте, нужна консультация", first_name="Анна", last_name="Смирнова")
    assert bot(hub).poll_once() == 1
    client = the_client(hub, 701)
    assert client.name == "Анна Смирнова"
    [item] = messages(hub, client.id)
    assert item.fields["direction"] == "in" and item.fields["body"] == "Здравствуйте, нужна консультация"


def test_a_batch_read_again_after_a_crash_changes_nothing(backend, sandbox, telegram_hub):
    hub = telegram_hub()
    for text in ("раз", "два"):
        sandbox.user_writes(702, text=text, first_name="Олег")
    bot(hub).poll_once()
    hub.state.delete("telegram", f"offset:{bot(hub).account}")  # the offset was never stored: read it all again
    bot(hub).poll_once()
    client = the_client(hub, 702)
    assert sorted(i.fields["body"] for i in messages(hub, client.id)) == ["два", "раз"]
    bot(hub).poll_once()
    assert bot(hub).poll_once() == 0  # the stored offset confirmed the batch


def test_sharing_ones_own_contact_links_the_chat_to_the_client_with_that_phone(backend, sandbox, telegram_hub):
    hub = telegram_hub()
    known = hub.ingest(
        ClientObservation(
            source=SourceRef(system="excel", entity="row", id="1"), name="Петров Иван", phones=["89161234567"]
        )
    )
    contact = {"phone_number": "+7 916 123-45-67", "first_name": "Ваня", "user_id": 703}
    sandbox.user_writes(703, contact=contact, first_name="Ваня")
    sandbox.user_writes(703, text="это я, перезвоните")
    bot(hub).poll_once()
    client = hub.get_client(known.client_id)
    assert client.name == "Петров Иван"  # a known client's name is not replaced by a Telegram profile
    assert any(r.system == "telegram" and r.id == "703" for r in client.refs)
    assert len(messages(hub, client.id)) == 2


def test_a_contact_of_someone_else_is_recorded_but_not_taken_as_the_senders_phone(backend, sandbox, telegram_hub):
    hub = telegram_hub()
    sandbox.user_writes(704, contact={"phone_number": "+79160000001", "first_name": "Коллега"}, first_name="Ира")
    bot(hub).poll_once()
    client = the_client(hub, 704)
    assert client.phones == []
    [item] = messages(hub, client.id)
    assert item.fields["contact_phone"] == "+79160000001" and item.fields["contact_is_sender"] is False


def test_a_known_chat_sharing_another_clients_phone_becomes_a_merge_candidate(backend, sandbox, telegram_hub):
    hub = telegram_hub()
    sandbox.user_writes(705, text="добрый день", first_name="Лена")
    bot(hub).poll_once()
    hub.ingest(
        ClientObservation(source=SourceRef(system="excel", entity="row", id="2"), name="Елена", phones=["+79162223344"])
    )
    sandbox.user_writes(705, contact={"phone_number": "+79162223344", "first_name": "Лена", "user_id": 705})
    bot(hub).poll_once()
    assert any("+79162223344" in c["reason"] for c in hub.merge_candidates())


def test_files_groups_and_edits(backend, sandbox, telegram_hub):
    hub = telegram_hub()
    sent = sandbox.user_writes(706, file={"name": "договор.pdf", "data": "x" * 2048}, caption="подпишите")
    group = {
        "update_id": 10**6,
        "message": {
            "message_id": 1,
            "date": 1700000000,
            "text": "всем привет",
            "chat": {"id": -100, "type": "group"},
            "from": {"id": 9, "is_bot": False},
        },
    }
    bot(hub).apply([group])
    sandbox.user_writes(706, text="подпишите, пожалуйста", edit_of=sent["message"]["message_id"])
    bot(hub).poll_once()
    client = the_client(hub, 706)
    [item] = messages(hub, client.id)  # the group message is nobody's; the edit updated the same entry
    assert item.fields["body"] == "подпишите, пожалуйста"
    assert item.fields["file_name"] == "договор.pdf" and item.fields["file_size"] == 2048


def test_a_reply_from_the_hub_is_sent_and_recorded_once(backend, sandbox, telegram_hub):
    hub = telegram_hub()
    sandbox.user_writes(707, text="сколько стоит доставка?", first_name="Марат")
    bot(hub).poll_once()
    client = the_client(hub, 707)
    hub.prepare()
    with serve_asgi(create_app(hub)) as url:
        ok = httpx.post(f"{url}/api/messages", json={"client_id": client.id, "text": "Доставка бесплатная"})
        assert ok.status_code == 201, ok.text
        empty = httpx.post(f"{url}/api/messages", json={"client_id": client.id, "text": "  "})
        assert empty.status_code == 422
        stranger = hub.ingest(
            ClientObservation(source=SourceRef(system="excel", entity="row", id="9"), phones=["+79165550000"])
        )
        never = httpx.post(f"{url}/api/messages", json={"client_id": stranger.client_id, "text": "здравствуйте"})
        assert never.status_code == 404 and "never written" in never.json()["detail"]
        sandbox.http.post("/sandbox/users/707/block")
        blocked = httpx.post(f"{url}/api/messages", json={"client_id": client.id, "text": "ау"})
        assert blocked.status_code == 502 and "blocked" in blocked.json()["detail"]
    assert [m["text"] for m in sandbox.sent_to(707)] == ["Доставка бесплатная"]
    out = [i for i in messages(hub, client.id) if i.fields["direction"] == "out"]
    assert [i.fields["body"] for i in out] == ["Доставка бесплатная"]
    bot(hub).poll_once()  # Telegram does not echo the bot's own messages: still one entry
    assert len(messages(hub, client.id)) == 2


SECRET = "hub-telegram-secret_0123456789"


def test_webhook_mode_takes_only_updates_carrying_the_secret(embedded, sandbox, telegram_hub):
    hub = telegram_hub(mode="webhook", webhook_secret=SECRET)
    hub.start("all")
    update = {
        "update_id": 42,
        "message": {
            "message_id": 5,
            "date": 1700000000,
            "text": "через вебхук",
            "chat": {"id": 708, "type": "private"},
            "from": {"id": 708, "is_bot": False, "first_name": "Гоша"},
        },
    }
    with serve_asgi(create_app(hub)) as url:
        hook = f"{url}/webhooks/telegram"
        assert httpx.post(hook, json=update).status_code == 401
        wrong = {"X-Telegram-Bot-Api-Secret-Token": "x" * len(SECRET)}
        assert httpx.post(hook, json=update, headers=wrong).status_code == 401
        assert hub.inbox.pending() == 0  # nothing stored from a refused request
        right = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        assert httpx.post(hook, content=b"{not json", headers=right).status_code == 400
        assert httpx.post(hook, json=update, headers=right).json() == {"ok": True, "stored": True}
        assert httpx.post(hook, json=update, headers=right).json() == {"ok": True, "stored": False}  # a retry
        wait_for(lambda: hub.inbox.pending() == 0)
        client = the_client(hub, 708)
        assert [i.fields["body"] for i in messages(hub, client.id)] == ["через вебхук"]

        # the real path: the Bot API server pushes what a user writes to the webhook it was given
        sandbox.call("setWebhook", url=hook, secret_token=SECRET)
        sandbox.user_writes(709, text="пишу боту", first_name="Вика")
        wait_for(lambda: sandbox.bot.delivered_to_webhook == 1 and hub.inbox.pending() == 0)
        assert [i.fields["body"] for i in messages(hub, the_client(hub, 709).id)] == ["пишу боту"]


def test_without_a_secret_the_webhook_route_does_not_exist(embedded, sandbox, telegram_hub):
    hub = telegram_hub(mode="webhook")
    hub.prepare()
    with serve_asgi(create_app(hub)) as url:
        assert httpx.post(f"{url}/webhooks/telegram", json={"update_id": 1}).status_code == 404
    assert hub.health()["plugins"]["telegram"]["status"] == "down"


def test_a_revoked_token_marks_the_bot_down_and_polling_stops(embedded, sandbox, telegram_hub, monkeypatch):
    hub = telegram_hub(bot_token=f"{sandbox.bot.bot_id}:{'A' * 35}")
    hub.start("all")
    wait_for(lambda: hub.health()["plugins"]["telegram"]["status"] == "down")
    assert "token is wrong or revoked" in hub.health()["plugins"]["telegram"]["error"]
    assert sandbox.bot.token not in str(hub.health())


def test_polling_under_hub_run_brings_messages_in_by_itself(embedded, sandbox, telegram_hub):
    hub = telegram_hub(poll_timeout=1)
    hub.start("all")
    sandbox.user_writes(710, text="алло", first_name="Дина")
    wait_for(lambda: hub.find_clients(ref=user_ref(bot(hub).account, 710)))
    assert hub.health()["plugins"]["telegram"]["status"] == "ok"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {
        "update_id": st.integers(),
        "message": st.dictionaries(
            st.sampled_from(
                ["message_id", "date", "text", "caption", "chat", "from", "contact", "document", "photo", "edit_date"]
            ),
            json_values,
            max_size=10,
        ),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(message_like, st.dictionaries(st.text(max_size=10), json_values, max_size=4)))
def test_any_update_maps_or_is_refused_with_a_reason(update):
    with contextlib.suppress(NotForTheHub, ValueError, TypeError):
        message_observations(update, "123")
