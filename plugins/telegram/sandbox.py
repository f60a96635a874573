"""A local Telegram Bot API server: the methods the plugin uses, as https://core.telegram.org/bots/api says.

``hub sandbox telegram`` serves it; tests and ``hub demo`` drive it. What it holds to (each checked by a test):
- ``/bot<token>/<method>``, GET or POST, parameters in the query, a form or a JSON body; every answer is
  ``{"ok": true, "result": …}`` or ``{"ok": false, "error_code": N, "description": "…"}``. A wrong token is 401
  ``Unauthorized``, an unknown method 404 ``Not Found``.
- ``getUpdates``: ``offset`` confirms every update below it (a negative one keeps the last ``-offset``),
  ``limit`` 1–100, ``timeout`` long-polls, ``allowed_updates`` is remembered; 409 while a webhook is set, and
  409 to the older of two concurrent long polls.
- ``setWebhook``: an HTTPS URL (plain HTTP only to a loopback address: the one liberty taken, so tests can
  receive), ``secret_token`` of 1–256 ``A-Z a-z 0-9 _ -``, sent back as ``X-Telegram-Bot-Api-Secret-Token``;
  an update is retried until the webhook answers 2xx. ``deleteWebhook``, ``getWebhookInfo``.
- ``sendMessage``: ``chat_id`` and ``text`` (1–4,096 characters) required; an unknown chat is 400
  ``chat not found``, a user who blocked the bot 403; more than one message a second to a chat (after a small
  burst) is 429 with ``parameters.retry_after``.
- ``getFile`` and ``/file/bot<token>/<file_path>``; ``getMe``.

Not Telegram: ``/sandbox/…`` lets a test play the users (write a message, share a contact or a file, block the
bot) and read what the bot sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_TEXT = 4096
MAX_DOWNLOAD = 20 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


@dataclass
class User:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    blocked: bool = False
    sent_to: list[dict[str, Any]] = field(default_factory=list)  # what the bot sent to this user
    sends: deque[float] = field(default_factory=deque)  # when, for the per-chat flood limit

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        return data


class BotServer:
    """The state of one bot and its users."""

    def __init__(self, token: str | None = None, username: str = "hub_sandbox_bot") -> None:
        bot_id = secrets.randbelow(9 * 10**9) + 10**9
        self.token = token or f"{bot_id}:{secrets.token_urlsafe(26)[:35]}"
        self.bot_id = int(self.token.split(":", 1)[0])
        self.username = username
        self.reset()

    def reset(self) -> None:
        self.users: dict[int, User] = {}
        self.updates: list[dict[str, Any]] = []  # not yet confirmed, oldest first
        self.next_update = 1
        self.next_message = 1
        self.files: dict[str, tuple[str, bytes]] = {}
        self.webhook: dict[str, Any] | None = None
        self.allowed: list[str] = []
        self.poll_generation = 0
        self.last_error: tuple[int, str] | None = None
        self.delivered_to_webhook = 0
        self.changed = asyncio.Event()

    # --- the users' side -------------------------------------------------------------------------------
    def user(self, user_id: int, **profile: Any) -> User:
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = User(user_id, profile.get("first_name") or f"User {user_id}")
        for key in ("first_name", "last_name", "username"):
            if profile.get(key) is not None:
                setattr(user, key, profile[key])
        return user

    def user_writes(self, user_id: int, content: dict[str, Any], *, edit_of: int | None = None) -> dict[str, Any]:
        user = self.user(user_id)
        user.blocked = False
        now = int(time.time())
        message: dict[str, Any] = {
            "message_id": edit_of or self._message_id(),
            "from": user.public(),
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "date": now,
        }
        if "file" in content:
            name, data = content["file"]["name"], content["file"].get("data", b"")
            file_id = "BQAC" + secrets.token_urlsafe(24)
            self.files[file_id] = (f"documents/{name}", data if isinstance(data, bytes) else str(data).encode())
            message["document"] = {
                "file_id": file_id,
                "file_unique_id": file_id[-12:],
                "file_name": name,
                "mime_type": content["file"].get("mime_type", "application/octet-stream"),
                "file_size": len(self.files[file_id][1]),
            }
            if content.get("caption"):
                message["caption"] = content["caption"]
        elif "contact" in content:
            message["contact"] = content["contact"]
        else:
            message["text"] = content.get("text", "")
        kind = "message"
        if edit_of is not None:
            kind = "edited_message"
            message["edit_date"] = now + 1
        update = {"update_id": self.next_update, kind: message}
        self.next_update += 1
        if not self.allowed or kind in self.allowed:
            self.updates.append(update)
            self.changed.set()
        return update

    def _message_id(self) -> int:
        self.next_message += 1
        return self.next_message - 1

    # --- Bot API methods -------------------------------------------------------------------------------
    def get_me(self, _p: dict[str, Any]) -> Any:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Hub Sandbox",
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def get_updates(self, p: dict[str, Any]) -> Any:
        if self.webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset, limit = _int(p, "offset", 0), min(max(_int(p, "limit", 100), 1), 100)
        timeout = min(max(_int(p, "timeout", 0), 0), 50)
        if "allowed_updates" in p:
            self.allowed = _list(p["allowed_updates"])
        self._confirm(offset)
        self.poll_generation += 1
        mine = self.poll_generation
        self.changed.set()  # an older long poll still waiting learns that it was superseded
        deadline = time.monotonic() + timeout
        while not self.updates and time.monotonic() < deadline:
            self.changed.clear()
            if self.poll_generation != mine:
                break
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
            if self.poll_generation != mine:
                raise ApiError(409, POLL_CONFLICT)
            if self.webhook is not None:
                raise ApiError(409, WEBHOOK_CONFLICT)
        return self.updates[:limit]

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]

    def set_webhook(self, p: dict[str, Any]) -> Any:
        url = str(p.get("url", ""))
        if not url:
            return self.delete_webhook(p)
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        if secret is not None and not SECRET.match(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if _bool(p.get("drop_pending_updates")):
            self.updates = []
        if "allowed_updates" in p:
            self.allowed = _list(p["allowed_updates"])
        self.webhook = {"url": url, "secret_token": secret}
        self.changed.set()
        return True

    def delete_webhook(self, p: dict[str, Any]) -> Any:
        self.webhook = None
        if _bool(p.get("drop_pending_updates")):
            self.updates = []
        return True

    def webhook_info(self, _p: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
            "max_connections": 40,
        }
        if self.allowed:
            info["allowed_updates"] = self.allowed
        if self.last_error:
            info["last_error_date"], info["last_error_message"] = self.last_error
        return info

    def send_message(self, p: dict[str, Any]) -> Any:
        if p.get("chat_id") in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        text = str(p.get("text") or "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        try:
            chat_id = int(p["chat_id"])
        except (TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        user = self.users.get(chat_id)
        if user is None:
            raise ApiError(400, "Bad Request: chat not found")
        if user.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        now = time.monotonic()
        while user.sends and now - user.sends[0] > 3.0:
            user.sends.popleft()
        if len(user.sends) >= 3:  # about one a second to one chat, a burst of three
            raise ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
        user.sends.append(now)
        message = {
            "message_id": self._message_id(),
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "Hub Sandbox", "username": self.username},
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "date": int(time.time()),
            "text": text,
        }
        user.sent_to.append(message)
        return message

    def get_file(self, p: dict[str, Any]) -> Any:
        file_id = str(p.get("file_id") or "")
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        if len(data) > MAX_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": file_id[-12:], "file_size": len(data), "file_path": path}

    # --- webhook delivery ------------------------------------------------------------------------------
    async def push(self, http: httpx.AsyncClient) -> None:
        """Deliver pending updates to the webhook in order, each until it is answered 2xx."""
        while True:
            hook = self.webhook
            if hook is None or not self.updates:
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), timeout=0.5)
                continue
            update = self.updates[0]
            headers = {"content-type": "application/json"}
            if hook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
            try:
                response = await http.post(hook["url"], content=json.dumps(update, ensure_ascii=False), headers=headers)
                ok = 200 <= response.status_code < 300
                error = f"Wrong response from the webhook: {response.status_code}"
            except httpx.HTTPError as exc:
                ok, error = False, f"Connection failed: {type(exc).__name__}"
            if ok:
                if self.updates and self.updates[0] is update:
                    self.updates.pop(0)
                self.delivered_to_webhook += 1
            else:
                self.last_error = (int(time.time()), error)
                await asyncio.sleep(0.2)


def _int(p: dict[str, Any], key: str, default: int) -> int:
    value = p.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {key} specified") from None


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value else []
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse allowed updates JSON object") from None
    if not isinstance(value, list):
        raise ApiError(400, "Bad Request: allowed updates must be an array")
    return [str(v) for v in value]


def _answer(result: Any = None, error: ApiError | None = None) -> JSONResponse:
    if error is None:
        return JSONResponse({"ok": True, "result": result})
    body: dict[str, Any] = {"ok": False, "error_code": error.code, "description": error.description}
    if error.retry_after is not None:
        body["parameters"] = {"retry_after": error.retry_after}
    return JSONResponse(body, status_code=error.code)


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            body = await request.body()
            if body:
                data = json.loads(body)
                if not isinstance(data, dict):
                    raise ApiError(400, "Bad Request: parameters must be a JSON object")
                params.update(data)
        elif kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def create_app(token: str | None = None, **_options: Any) -> Starlette:
    bot = BotServer(token)
    methods: dict[str, Any] = {
        "getme": bot.get_me,
        "getupdates": bot.get_updates,
        "setwebhook": bot.set_webhook,
        "deletewebhook": bot.delete_webhook,
        "getwebhookinfo": bot.webhook_info,
        "sendmessage": bot.send_message,
        "getfile": bot.get_file,
    }
    state: dict[str, Any] = {}

    def ensure_pusher() -> None:
        if "pusher" not in state:
            state["http"] = httpx.AsyncClient(timeout=5.0)
            state["pusher"] = asyncio.get_running_loop().create_task(bot.push(state["http"]))

    def authorised(given: str) -> None:
        if ":" not in given:
            raise ApiError(404, "Not Found")
        if not secrets.compare_digest(given, bot.token):
            raise ApiError(401, "Unauthorized")

    async def method(request: Request) -> Response:
        ensure_pusher()
        try:
            authorised(request.path_params["token"])
            handler = methods.get(request.path_params["method"].lower())
            if handler is None:
                raise ApiError(404, "Not Found")
            params = await _params(request)
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
            return _answer(result)
        except ApiError as exc:
            return _answer(error=exc)
        except (ValueError, RecursionError):
            return _answer(error=ApiError(400, "Bad Request: can't parse JSON"))

    async def download(request: Request) -> Response:
        try:
            authorised(request.path_params["token"])
        except ApiError as exc:
            return _answer(error=exc)
        path = request.path_params["path"]
        for stored, data in bot.files.values():
            if stored == path:
                return Response(data, media_type="application/octet-stream")
        return _answer(error=ApiError(404, "Not Found"))

    # --- the users' side (not Telegram) ---------------------------------------------------------------
    async def user_message(request: Request) -> Response:
        ensure_pusher()
        data = await request.json()
        user_id = int(request.path_params["user_id"])
        bot.user(user_id, **{k: data.get(k) for k in ("first_name", "last_name", "username")})
        update = bot.user_writes(user_id, data, edit_of=data.get("edit_of"))
        return JSONResponse(update)

    async def user_blocks(request: Request) -> Response:
        bot.user(int(request.path_params["user_id"])).blocked = True
        return JSONResponse({"ok": True})

    async def sent_to(request: Request) -> Response:
        user = bot.users.get(int(request.path_params["user_id"]))
        return JSONResponse(user.sent_to if user else [])

    async def reset(_request: Request) -> Response:
        bot.reset()
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        if "pusher" in state:
            state["pusher"].cancel()
            await state["http"].aclose()

    app = Starlette(
        routes=[
            Route("/bot{token}/{method}", method, methods=["GET", "POST"]),
            Route("/file/bot{token}/{path:path}", download, methods=["GET"]),
            Route("/sandbox/users/{user_id:int}/messages", user_message, methods=["POST"]),
            Route("/sandbox/users/{user_id:int}/block", user_blocks, methods=["POST"]),
            Route("/sandbox/users/{user_id:int}/sent", sent_to, methods=["GET"]),
            Route("/sandbox/reset", reset, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.bot = bot
    app.state.banner = (
        f"bot token: {bot.token}\n"
        "set HUB_TELEGRAM__BOT_TOKEN to it and HUB_TELEGRAM__API_BASE to this address;\n"
        'play a user: POST /sandbox/users/<id>/messages {"text": "Здравствуйте", "first_name": "Анна"}\n'
        'share a contact: {"contact": {"phone_number": "+79161234567", "first_name": "Анна", "user_id": <id>}}'
    )
    return app
