"""Telegram updates ↔ the hub's observations.

One private-chat message is one ``message`` interaction keyed ``telegram/<bot id>/message/<chat>:<message>``
(an edit updates it in place). The sender is named by the ref ``telegram/<bot id>/user/<user id>``; a stranger
becomes a client named from the profile, and a known client's name is never touched. A contact the user shares
of *themselves* (``contact.user_id`` equals the sender) adds that phone to the sender's client: a new sender is
found as the client who already has the phone, a known one gets a merge candidate if another client has it.
A contact of someone else is only recorded in the message. Group, channel and bot messages are not a client's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.core.events import ClientKey, ClientObservation, InteractionObservation, SourceRef

SYSTEM = "telegram"
MAX_TEXT = 20_000  # a message is at most 4,096 characters, a caption 1,024: anything longer is not Telegram's

# what a message may carry besides text, with the field holding it (https://core.telegram.org/bots/api#message)
_MEDIA = ("document", "photo", "video", "audio", "voice", "video_note", "animation", "sticker")


class NotForTheHub(ValueError):
    """An update that is valid but not a client's message (a group, a channel, a bot, a service message)."""


def bot_account(token: str) -> str:
    """The bot's id, the digits before the colon of its token: stable, and needs no API call."""
    return token.split(":", 1)[0]


def user_ref(account: str, user_id: Any) -> SourceRef:
    return SourceRef(system=SYSTEM, account=account, entity="user", id=str(user_id))


def message_ref(account: str, chat_id: Any, message_id: Any) -> SourceRef:
    return SourceRef(system=SYSTEM, account=account, entity="message", id=f"{chat_id}:{message_id}")


def _when(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**33:
        raise ValueError(f"date {value!r} is not a Unix time")
    return datetime.fromtimestamp(value, UTC)


def _name(user: dict[str, Any]) -> str | None:
    parts = [str(user.get(k) or "").strip() for k in ("first_name", "last_name")]
    name = " ".join(p for p in parts if p)
    return name[:200] or None


def _media(message: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for kind in _MEDIA:
        value = message.get(kind)
        if kind == "photo" and isinstance(value, list) and value:
            biggest = max((p for p in value if isinstance(p, dict)), key=lambda p: p.get("file_size") or 0, default={})
            return kind, {"file_name": "photo.jpg", **biggest}
        if isinstance(value, dict):
            return kind, value
    return None


def message_observations(update: dict[str, Any], account: str) -> list[ClientObservation | InteractionObservation]:
    """The observations of one update, in the order they must be applied. Raises ``NotForTheHub`` for an update
    that is no client's message and ``ValueError`` for one that is malformed."""
    message = update.get("message") or update.get("edited_message")
    if not isinstance(message, dict):
        raise NotForTheHub("not a message")
    chat, sender = message.get("chat"), message.get("from")
    if not isinstance(chat, dict) or chat.get("type") != "private":
        raise NotForTheHub("not a private chat")
    if not isinstance(sender, dict) or sender.get("is_bot"):
        raise NotForTheHub("not from a person")
    chat_id, message_id, user_id = chat.get("id"), message.get("message_id"), sender.get("id")
    for label, value in (("chat.id", chat_id), ("message_id", message_id), ("from.id", user_id)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{label} must be an integer")
    sent = _when(message.get("date"))
    edited = message.get("edit_date")
    observed = _when(edited) if edited is not None else sent

    text = message.get("text") or message.get("caption") or ""
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    fields: dict[str, Any] = {"telegram_chat_id": chat_id}
    if sender.get("username"):
        fields["telegram_username"] = str(sender["username"])[:64]
    phones: list[str] = []
    kind = "text"
    summary = None
    contact = message.get("contact")
    if isinstance(contact, dict) and contact.get("phone_number"):
        kind = "contact"
        phone = str(contact["phone_number"])[:40]
        fields["contact_phone"] = phone
        own = contact.get("user_id") == user_id
        fields["contact_is_sender"] = own
        if own:
            phones = [phone]
        summary = f"contact {_name(contact) or ''} {phone}".replace("  ", " ").strip()
    media = _media(message)
    if media is not None:
        kind, item = media
        file_name = str(item.get("file_name") or f"{kind}")[:255]
        size = item.get("file_size")
        fields["file_name"] = file_name
        if isinstance(size, int) and not isinstance(size, bool):
            fields["file_size"] = size
        if item.get("file_id"):
            fields["file_id"] = str(item["file_id"])[:200]
        summary = f"{kind}: {file_name}" + (f" ({size} bytes)" if isinstance(size, int) else "")
    fields["message_kind"] = kind

    ref = user_ref(account, user_id)
    name = _name(sender)
    observations: list[ClientObservation | InteractionObservation] = [
        InteractionObservation(
            source=message_ref(account, chat_id, message_id),
            observed_at=observed,
            channel="message",
            direction="in",
            occurred_at=sent,
            client=ClientKey(ref=ref, phones=phones, name=name),
            body=text[:MAX_TEXT] or None,
            summary=summary,
            fields=fields,
        )
    ]
    if phones:  # after the message: a new sender is found by the phone first, then the ref is linked there
        observations.append(ClientObservation(source=ref, observed_at=observed, phones=phones))
    return observations


def sent_observation(
    account: str, client_id: int, sent: dict[str, Any], *, operator: str | None = None
) -> InteractionObservation:
    """What the hub records for a message it sent (the ``Message`` that ``sendMessage`` returned)."""
    chat = sent.get("chat") or {}
    return InteractionObservation(
        source=message_ref(account, chat.get("id"), sent.get("message_id")),
        channel="message",
        direction="out",
        occurred_at=_when(sent.get("date")),
        client=ClientKey(client_id=client_id),
        body=str(sent.get("text") or "")[:MAX_TEXT] or None,
        operator=operator,
        fields={"telegram_chat_id": chat.get("id"), "message_kind": "text"},
    )
