"""Who an email is with: the company's own addresses and domains, no-reply senders, auto-replies and bounces.

The company, robots and internal mail never become clients and never enter a client's timeline. No hub imports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .mime import Address, ParsedEmail

_NOREPLY = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|mailer[-_.]?daemon|postmaster|bounces?|"
    r"notifications?|auto[-_.]?(reply|responder)|donotreply)([-+_.].*)?$",
    re.I,
)
_BULK = {"bulk", "list", "junk"}


def ascii_domain(domain: str) -> str:
    """The domain in its ASCII (punycode) form, lower case, so ``почта.рф`` and ``xn--80a1acny.xn--p1ai`` match."""
    domain = domain.strip().rstrip(".").lower()
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return domain


def canonical(address: str) -> str:
    """Case-insensitive, IDN-aware comparison form of an address."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return f"{local.lower()}@{ascii_domain(domain)}" if local else address.strip().lower()


@dataclass(frozen=True)
class Company:
    """The company's own addresses and domains."""

    addresses: frozenset[str]
    domains: frozenset[str]

    @classmethod
    def of(cls, addresses: Iterable[str], domains: Iterable[str]) -> Company:
        return cls(
            frozenset(canonical(a) for a in addresses if a.strip()),
            frozenset(ascii_domain(d.lstrip("@")) for d in domains if d.strip()),
        )

    def owns(self, address: str) -> bool:
        found = canonical(address)
        domain = found.rpartition("@")[2]
        return found in self.addresses or domain in self.domains or any(domain.endswith("." + d) for d in self.domains)


def is_noreply(address: str) -> bool:
    return bool(_NOREPLY.match(address.rpartition("@")[0]))


def robot_reason(parsed: ParsedEmail) -> str | None:
    """Why a message was written by a machine (an auto-reply, a bounce, a list), or ``None``."""
    h = parsed.headers
    if parsed.content_type == "multipart/report" or "x-failed-recipients" in h:
        return "bounce"
    if parsed.sender and re.match(r"^(mailer[-_.]?daemon|postmaster)\b", parsed.sender[0].email, re.I):
        return "bounce"
    auto = h.get("auto-submitted", "").split(";", 1)[0].strip().lower()
    if auto and auto != "no":
        return "auto-reply"
    if "x-autoreply" in h or "x-autorespond" in h:
        return "auto-reply"
    if h.get("precedence", "").strip().lower() in _BULK:
        return "bulk"
    if "x-loop" in h:
        return "auto-reply"
    return None


@dataclass(frozen=True)
class Decision:
    """Which clients a message goes to, and its direction from the company's side; ``skipped`` says why none."""

    direction: str
    clients: tuple[Address, ...]
    skipped: str | None = None


def decide(parsed: ParsedEmail, company: Company) -> Decision:
    """The clients of a message: every address in From/To/Cc that is neither the company nor a robot."""
    robot = robot_reason(parsed)
    if robot:
        return Decision("in", (), robot)
    if not parsed.sender:
        return Decision("in", (), "no sender")
    direction = "out" if company.owns(parsed.sender[0].email) else "in"
    clients: list[Address] = []
    seen: set[str] = set()
    for address in [*parsed.sender, *parsed.to, *parsed.cc]:
        key = canonical(address.email)
        if key in seen or company.owns(address.email) or is_noreply(address.email):
            continue
        seen.add(key)
        clients.append(address)
    if not clients:
        if direction == "in" and is_noreply(parsed.sender[0].email):
            return Decision(direction, (), "no-reply sender")
        return Decision("internal", (), "internal")
    return Decision(direction, tuple(clients))
