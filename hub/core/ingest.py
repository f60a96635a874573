"""Applying one observation to the unified record: identity, provenance, timeline and outbox, one transaction.

``apply_observation`` runs inside a write transaction the caller owns; the record change, the timeline entry
and the outbox events commit together or not at all. Applying the same observation twice changes nothing and
emits nothing, because every write compares normalised values first and timeline entries are keyed by source.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import structlog
from sqlalchemy import Connection, bindparam, insert, select, text, update

from hub.core import schema as s
from hub.core.errors import BadInput
from hub.core.events import (
    ClientKey,
    ClientObservation,
    DealObservation,
    Event,
    InteractionObservation,
    RefObservation,
    RefView,
    SourceRef,
    TaskObservation,
)
from hub.core.identity import company_name_key, name_adds_nothing, normalize_email, normalize_phone
from hub.core.record import (
    ClientState,
    as_utc,
    find_ref,
    item_view,
    live_id,
    load_client,
    point_owners,
    point_owners_many,
)

log = structlog.get_logger("hub.ingest")

# A batch names the same numbers and addresses again and again (a call log, a base with one office phone per
# company): phonenumbers stays the authority, its answer is kept. A refusal raises and is not kept.
_normalize_phone = lru_cache(maxsize=65536)(normalize_phone)
_normalize_email = lru_cache(maxsize=65536)(normalize_email)
_PREFETCH_CHUNK = 500  # values per IN list: well below SQLite's bound parameter limit

ITEM_EVENT = {"interaction": "interaction.added", "deal": "deal.changed", "task": "task.changed"}

# Statements built once: building and cache-keying a statement costs more than running it on SQLite.
_INSERT_CLIENT = insert(s.clients)
_UPDATE_CLIENT = (
    update(s.clients)
    .where(s.clients.c.id == bindparam("client_id"))
    .values(
        name=bindparam("name"),
        search=bindparam("search"),
        company_id=bindparam("company_id"),
        fields=bindparam("fields", type_=s.clients.c.fields.type),
        version=bindparam("version"),
        updated_at=bindparam("updated_at"),
    )
)
_INSERT_REF = insert(s.refs)
_INSERT_POINT = insert(s.contact_points)
_INSERT_ITEM = insert(s.items)
_INSERT_OUTBOX = insert(s.outbox)
_ITEM = select(s.items).where(s.items.c.id == bindparam("id"))
_UPDATE_ITEM = (
    update(s.items)
    .where(s.items.c.id == bindparam("item_id"))
    .values(
        fields=bindparam("fields", type_=s.items.c.fields.type),
        version=bindparam("version"),
        updated_at=bindparam("updated_at"),
        occurred_at=bindparam("occurred_at"),
    )
)
# one (system, account, entity) at a time: the unique index leads with them
_REFS_BY_EXT_ID = select(s.refs.c.ext_id, s.refs.c.target, s.refs.c.target_id).where(
    s.refs.c.system == bindparam("system"),
    s.refs.c.account == bindparam("account"),
    s.refs.c.entity == bindparam("entity"),
    s.refs.c.ext_id.in_(bindparam("ext_ids", expanding=True)),
)
_MERGED_INTO_MANY = select(s.clients.c.id, s.clients.c.merged_into).where(
    s.clients.c.id.in_(bindparam("ids", expanding=True))
)
# the array is taken in its order, which the caller sorted
_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS t(k, n)"
)
_NOT_ITEM_FIELDS = frozenset(
    {"schema_version", "source", "observed_at", "kind", "client", "fields", "channel", "occurred_at"}
)
# a contact point that only suggests: two companies with one normalised name become a merge candidate, never one
COMPANY_NAME = "company_name"
_PERSON_NAME_FIELDS = frozenset({"name", "first_name", "last_name", "middle_name"})
_OPEN_CANDIDATE = select(s.merge_candidates.c.id).where(
    s.merge_candidates.c.client_id == bindparam("a"),
    s.merge_candidates.c.other_id == bindparam("b"),
    s.merge_candidates.c.status == "open",
)


@dataclass
class IngestPolicy:
    """What ingest needs from the settings and the plugins."""

    region: str = "RU"
    system_of_record: dict[str, list[str]] = field(default_factory=dict)
    create_unknown_clients: bool = True
    identity_keys: dict[str, Callable[[str], str | None]] = field(default_factory=dict)
    postgres: bool = False

    def outranks(self, fieldname: str, new_origin: str, new_t: str, old: dict[str, Any] | None) -> bool:
        """Whether a new value from ``new_origin`` observed at ``new_t`` replaces ``old``."""
        if old is None:
            return True
        priority = self.system_of_record.get(fieldname) or self.system_of_record.get("*")
        if priority:
            rank_new, rank_old = _rank(new_origin, priority), _rank(old.get("s", ""), priority)
            if rank_new != rank_old:
                return rank_new < rank_old
        return new_t >= str(old.get("t", ""))


def _rank(origin: str, priority: list[str]) -> int:
    system = origin.split(":", 1)[0]
    for i, name in enumerate(priority):
        if name in (origin, system):
            return i
    return len(priority)


@dataclass
class Applied:
    """What applying one observation did: the events to publish and any warnings worth logging."""

    events: list[Event] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    client_id: int | None = None
    item_id: int | None = None


_WEAK = datetime(1970, 1, 1, tzinfo=UTC)  # the observation time of a weak value: anything later outranks it


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return as_utc(value).astimezone(UTC).isoformat()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return _iso(value)
    return value


def _only_respelt(kind: str, fieldname: str, new: Any, old: Any) -> bool:
    """A name that says nothing new keeps the one the hub holds: ``ИВАНОВ И.`` does not replace ``Иванов Иван
    Петрович``, nor ``ООО Атлант`` the ``ООО «Атлант»`` of the same company. A real change still wins."""
    if not (isinstance(new, str) and isinstance(old, str)):
        return False
    if kind == "company":
        return (
            fieldname == "name" and company_name_key(new) is not None and company_name_key(new) == company_name_key(old)
        )
    return fieldname in _PERSON_NAME_FIELDS and name_adds_nothing(new, old)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.split()) == " ".join(b.split())
    return bool(a == b)


class Ingest:
    """Applies observations within a connection's transaction. One instance per transaction."""

    def __init__(self, conn: Connection, policy: IngestPolicy, *, strict: bool = True) -> None:
        self.conn = conn
        self.policy = policy
        self.strict = strict
        self.result = Applied()
        self.wrote = False
        self._locked: set[int] = set()
        self._live: dict[int, int | None] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {"contact_points": [], "refs": [], "outbox": []}
        self._refs: dict[tuple[str, str, str, str], tuple[str, int] | None] = {}
        self._point_cache: dict[tuple[str, str, str | None], list[int]] = {}
        self._states: dict[int, ClientState] = {}

    # --- entry point -------------------------------------------------------------------------------------
    def _write(self, statement: Any, params: Any = None) -> Any:
        self.wrote = True
        return self.conn.execute(statement, params)

    def apply(self, obs: Any) -> Applied:
        """Apply one observation. Everything that can refuse it (``BadInput``) is checked before the first write,
        so a refused observation leaves no trace even without a savepoint (``wrote`` stays false)."""
        self.result = Applied()
        self.wrote = False
        if isinstance(obs, ClientObservation):
            self._apply_client(obs)
        elif isinstance(obs, InteractionObservation | DealObservation | TaskObservation):
            self._apply_item(obs)
        elif isinstance(obs, RefObservation):
            self._apply_ref(obs)
        else:  # pragma: no cover - the discriminated union admits nothing else
            raise BadInput(f"unknown observation kind: {type(obs).__name__}")
        return self.result

    # --- normalisation -----------------------------------------------------------------------------------
    def _phones(self, raw: list[str]) -> list[str]:
        out: list[str] = []
        for value in raw:
            try:
                phone = _normalize_phone(value, self.policy.region)
            except BadInput as exc:
                if self.strict:
                    raise
                self.result.warnings.append(str(exc))
                continue
            if phone not in out:
                out.append(phone)
        return out

    def _emails(self, raw: list[str]) -> list[str]:
        out: list[str] = []
        for value in raw:
            try:
                email = _normalize_email(value)
            except BadInput as exc:
                if self.strict:
                    raise
                self.result.warnings.append(str(exc))
                continue
            if email not in out:
                out.append(email)
        return out

    def _identity(self, raw: dict[str, str]) -> list[tuple[str, str]]:
        out = []
        for key, value in raw.items():
            normalise = self.policy.identity_keys.get(key)
            if normalise is None:
                msg = f"unknown identity key {key!r}; plugins register keys with hub_register_identity_keys"
                if self.strict:
                    raise BadInput(msg)
                self.result.warnings.append(msg)
                continue
            canonical = normalise(value)
            if canonical is None:
                msg = f"not a valid {key}: {value!r}"
                if self.strict:
                    raise BadInput(msg)
                self.result.warnings.append(msg)
                continue
            out.append((key, canonical))
        return out

    # --- locking -----------------------------------------------------------------------------------------
    def _lock(self, keys: list[str]) -> None:
        """Serialise concurrent ingest of the same identity (PostgreSQL; SQLite writers are serial already).

        All keys of an observation in one statement, in a fixed order (no deadlock between two writers), and
        each key once per transaction (a batch asks for the same phone again and again).
        """
        if not self.policy.postgres or not keys:
            return
        digests = sorted(
            {int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True) for key in keys}
            - self._locked
        )
        if digests:
            self.conn.execute(_LOCK_KEYS, {"keys": digests})
            self._locked.update(digests)

    # --- batch prefetch: every ref and contact point a batch names, in a few set-based queries -------------
    def prefetch(self, observations: Sequence[Any]) -> None:
        """Look up at once every external ref and every phone, e-mail and identity key the batch names.

        The answers fill the unit's caches, which the unit keeps current as it writes (a ref it links, a
        contact point it adds), so applying the observations one after another asks the database only about
        what the batch itself has not told it. A value that does not normalise is skipped here; applying its
        observation refuses it as before.
        """
        refs: set[tuple[str, str, str, str]] = set()
        points: dict[str, set[tuple[str, str]]] = {}
        for obs in observations:
            source = getattr(obs, "source", None)
            if isinstance(source, SourceRef):
                refs.add((source.system, source.account, source.entity, source.id))
            for key, kind in self._keys_of(obs):
                if key.ref is not None:
                    refs.add((key.ref.system, key.ref.account, key.ref.entity, key.ref.id))
                points.setdefault(kind, set()).update(self._quiet_points(key.phones, key.emails, {}))
            if isinstance(obs, ClientObservation):
                wanted = points.setdefault(obs.client_kind, set())
                wanted.update(self._quiet_points(obs.phones, obs.emails, obs.identity))
                if obs.client_kind == "company" and obs.name and (name_key := company_name_key(obs.name)):
                    wanted.add((COMPANY_NAME, name_key))
        self._prefetch_refs(refs - self._refs.keys())
        self._prefetch_live({found[1] for found in self._refs.values() if found is not None and found[0] == "client"})
        for client_kind, pairs in points.items():
            missing = sorted((k, v) for k, v in pairs if (k, v, client_kind) not in self._point_cache)
            for chunk in _chunks(missing):
                found = point_owners_many(self.conn, chunk, client_kind)
                for k, v in chunk:
                    self._point_cache[(k, v, client_kind)] = found.get((k, v), [])

    @staticmethod
    def _keys_of(obs: Any) -> Iterator[tuple[ClientKey, str]]:
        if isinstance(obs, ClientObservation):
            if obs.company is not None:
                yield obs.company, "company"
        elif isinstance(obs, InteractionObservation | DealObservation | TaskObservation):
            yield obs.client, obs.client.kind

    def _quiet_points(self, phones: list[str], emails: list[str], identity: dict[str, str]) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for raw in phones:
            with contextlib.suppress(BadInput):
                out.add(("phone", _normalize_phone(raw, self.policy.region)))
        for raw in emails:
            with contextlib.suppress(BadInput):
                out.add(("email", _normalize_email(raw)))
        for key, raw in identity.items():
            normalise = self.policy.identity_keys.get(key)
            canonical = normalise(raw) if normalise is not None else None
            if canonical is not None:
                out.add((key, canonical))
        return out

    def _prefetch_refs(self, wanted: set[tuple[str, str, str, str]]) -> None:
        groups: dict[tuple[str, str, str], list[str]] = {}
        for system, account, entity, ext_id in wanted:
            groups.setdefault((system, account, entity), []).append(ext_id)
        for (system, account, entity), ext_ids in groups.items():
            for chunk in _chunks(sorted(ext_ids)):
                params = {"system": system, "account": account, "entity": entity, "ext_ids": chunk}
                found = {r.ext_id: (r.target, r.target_id) for r in self.conn.execute(_REFS_BY_EXT_ID, params)}
                for ext_id in chunk:
                    self._refs[(system, account, entity, ext_id)] = found.get(ext_id)

    def _prefetch_live(self, ids: set[int]) -> None:
        """Which of these clients stand for themselves (not merged away): one query. A merged one is left to
        ``_live_id``, which follows its chain."""
        for chunk in _chunks(sorted(ids - self._live.keys())):
            for row in self.conn.execute(_MERGED_INTO_MANY, {"ids": chunk}):
                if row.merged_into is None:
                    self._live[row.id] = row.id

    # --- cached lookups (one observation asks the same questions several times) ---------------------------
    def _find_ref(self, ref: SourceRef) -> tuple[str, int] | None:
        key = (ref.system, ref.account, ref.entity, ref.id)
        if key not in self._refs:
            self._refs[key] = find_ref(self.conn, ref)
        return self._refs[key]

    def _live_id(self, client_id: int) -> int | None:
        """The live client for an id (merges cannot happen inside a unit of work, so the answer holds)."""
        if client_id not in self._live:
            self._live[client_id] = live_id(self.conn, client_id)
        return self._live[client_id]

    def _owners(self, kind: str, values: list[str], client_kind: str | None) -> dict[str, list[int]]:
        missing = [v for v in values if (kind, v, client_kind) not in self._point_cache]
        if missing:
            found = point_owners(self.conn, kind, missing, client_kind)
            for v in missing:
                self._point_cache[(kind, v, client_kind)] = found.get(v, [])
        return {v: self._point_cache[(kind, v, client_kind)] for v in values}

    def _prefetch_points(self, wanted: list[tuple[str, list[str]]], client_kind: str | None) -> None:
        """One query for every contact point an observation names (phones, emails, identity keys)."""
        pairs = [(k, v) for k, values in wanted for v in values if (k, v, client_kind) not in self._point_cache]
        if len(pairs) < 2:
            return
        found = point_owners_many(self.conn, pairs, client_kind)
        for k, v in pairs:
            self._point_cache[(k, v, client_kind)] = found.get((k, v), [])

    # --- clients -----------------------------------------------------------------------------------------
    def _resolve(
        self,
        *,
        ref: SourceRef | None,
        keys: list[tuple[str, str]],
        phones: list[str],
        emails: list[str],
        kind: str,
        reason_origin: str,
    ) -> int | None:
        """Identity resolution: external ref, identity keys, phones, emails. Ambiguity is recorded."""
        if ref is not None:
            found = self._find_ref(ref)
            if found is not None and found[0] == "client":
                return self._live_id(found[1])
        self._prefetch_points([*((k, [v]) for k, v in keys), ("phone", phones), ("email", emails)], kind)
        for point_kind, values in (*((k, [v]) for k, v in keys), ("phone", phones), ("email", emails)):
            owners = self._owners(point_kind, values, kind)
            ids = sorted({cid for found_ids in owners.values() for cid in found_ids})
            if ids:
                chosen = ids[0]
                for other in ids[1:]:
                    self._candidate(chosen, other, f"shared {point_kind} ({reason_origin})")
                return chosen
        return None

    def _candidate(self, client_id: int, other_id: int, reason: str) -> None:
        a, b = sorted((client_id, other_id))
        if a == b:
            return
        exists = self.conn.execute(_OPEN_CANDIDATE, {"a": a, "b": b}).first()
        if exists is None:
            self._write(
                insert(s.merge_candidates).values(
                    client_id=a, other_id=b, reason=reason[:320], status="open", created_at=_now()
                )
            )
            log.info("merge candidate recorded", client_id=a, other_id=b, reason=reason)

    def _apply_client(self, obs: ClientObservation, *, link_ref: bool = True) -> None:
        phones, emails = self._phones(obs.phones), self._emails(obs.emails)
        keys = self._identity(obs.identity)
        self._lock([str(obs.source), *phones, *emails, *(f"{k}:{v}" for k, v in keys)])
        origin = obs.source.origin
        cid = self._resolve(
            ref=obs.source,
            keys=keys,
            phones=phones,
            emails=emails,
            kind=obs.client_kind,
            reason_origin=str(obs.source),
        )
        now = _now()
        state = self._state(cid, for_update=self.policy.postgres) if cid else None
        created = state is None
        if state is None:
            state = ClientState(
                id=0,
                kind=obs.client_kind,
                name=None,
                company_id=None,
                fields={},
                version=0,
                merged_into=None,
                created_at=now,
                updated_at=now,
            )
        changed: list[str] = []
        t = _iso(obs.observed_at)

        name = obs.name or " ".join(p for p in (obs.last_name, obs.first_name, obs.middle_name) if p) or None
        values: dict[str, Any] = {
            "name": name,
            "first_name": obs.first_name,
            "last_name": obs.last_name,
            "middle_name": obs.middle_name,
            "position": obs.position,
        }
        values.update(obs.fields)
        if obs.company is not None:
            company_id = self._employer(obs.company, origin, state)
            if company_id is not None and company_id != state.id:
                values["company_id"] = company_id
        for fieldname, value in values.items():
            if value is None or value == "":
                continue
            if self._set_field(state, fieldname, _jsonable(value), origin, t):
                changed.append(fieldname)

        hints = [(COMPANY_NAME, [k])] if obs.client_kind == "company" and name and (k := company_name_key(name)) else []
        new_points: list[tuple[str, str]] = []
        for kind, vals in (("phone", phones), ("email", emails), *((k, [v]) for k, v in keys), *hints):
            for value in vals:
                if (kind, value) not in state.points and (kind, value) not in new_points:
                    new_points.append((kind, value))
                    if kind in ("phone", "email"):
                        changed.append(f"{kind}s")
        for point in new_points:
            state.points[point] = 0
        if created:
            state.version = 1
            inserted = self._write(
                _INSERT_CLIENT,
                {
                    "kind": state.kind,
                    "name": state.name,
                    "search": state.search_text(),
                    "company_id": state.company_id,
                    "fields": state.fields,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                },
            ).inserted_primary_key
            assert inserted is not None
            state.id = int(inserted[0])
            self._states[state.id] = state
            self._live[state.id] = state.id
        if new_points:
            for kind, value in new_points:
                for other in self._owners(kind, [value], obs.client_kind)[value]:
                    if other == state.id:
                        continue
                    if kind == COMPANY_NAME:
                        if not self._keys_conflict(state, other):
                            self._candidate(state.id, other, f"similar company name {name!r} ({obs.source})")
                    else:
                        self._candidate(state.id, other, f"shared {kind} {value} ({obs.source})")
                self._point_cache[(kind, value, obs.client_kind)] = sorted(
                    {*self._point_cache.get((kind, value, obs.client_kind), []), state.id}
                )
            self._defer(
                "contact_points",
                [
                    {"client_id": state.id, "kind": k, "value": v, "origin": origin, "observed_at": obs.observed_at}
                    for k, v in new_points
                ],
            )
        if link_ref and self._link_ref(obs.source, "client", state.id):
            state.refs.append(
                RefView(
                    system=obs.source.system, account=obs.source.account, entity=obs.source.entity, id=obs.source.id
                )
            )
        self._finish_client(state, obs.source, changed, created, now)
        self.result.client_id = state.id

    def _state(self, client_id: int, *, for_update: bool = False) -> ClientState | None:
        state = self._states.get(client_id)
        if state is None:
            state = load_client(self.conn, client_id, for_update=for_update)
            if state is not None:
                self._states[client_id] = state
        return state

    def _keys_conflict(self, state: ClientState, other_id: int) -> bool:
        """Whether two clients hold different values of one identity key (two INNs): surely not one client."""
        other = self._state(other_id)
        if other is None:
            return False
        for key in self.policy.identity_keys:
            mine, theirs = set(state.values(key)), set(other.values(key))
            if mine and theirs and not mine & theirs:
                return True
        return False

    def _set_field(self, state: ClientState, fieldname: str, value: Any, origin: str, t: str) -> bool:
        old = state.fields.get(fieldname)
        if old is not None and _same(old.get("v"), value):
            return False
        weak = old is not None and old.get("t") == _iso(_WEAK)  # a PBX guess gives way to any real name
        if old is not None and not weak and _only_respelt(state.kind, fieldname, value, old.get("v")):
            return False
        if not self.policy.outranks(fieldname, origin, t, old):
            return False
        state.fields[fieldname] = {"v": value, "s": origin, "t": t}
        if fieldname == "name":
            state.name = value
        elif fieldname == "company_id":
            state.company_id = value
        return True

    def _link_ref(self, ref: SourceRef, target: str, target_id: int) -> bool:
        found = self._find_ref(ref)
        if found is not None:
            if found == (target, target_id):
                return False
            if target == "client" and found[0] == "client":
                current = self._live_id(found[1])
                if current is not None and current != target_id:
                    self._candidate(target_id, current, f"same {ref.system} {ref.entity} {ref.id}")
            return False
        self._defer(
            "refs",
            [
                {
                    "system": ref.system,
                    "account": ref.account,
                    "entity": ref.entity,
                    "ext_id": ref.id,
                    "target": target,
                    "target_id": target_id,
                    "created_at": _now(),
                }
            ],
        )
        self._refs[(ref.system, ref.account, ref.entity, ref.id)] = (target, target_id)
        return True

    def _finish_client(
        self, state: ClientState, origin: SourceRef, changed: list[str], created: bool, now: datetime
    ) -> None:
        if not changed and not created:
            return
        if not created:
            state.version += 1
            state.updated_at = now
            self._write(
                _UPDATE_CLIENT,
                {
                    "client_id": state.id,
                    "name": state.name,
                    "search": state.search_text(),
                    "company_id": state.company_id,
                    "fields": state.fields,
                    "version": state.version,
                    "updated_at": now,
                },
            )
        changed_fields = sorted(set(changed)) if not created else ["created", *sorted(set(changed))]
        self._emit(
            Event(
                type="client.changed",
                client_id=state.id,
                version=state.version,
                origin=origin,
                changed=changed_fields,
                client=state.view(),
                occurred_at=now,
            )
        )

    def _employer(self, key: ClientKey, origin: str, person: ClientState) -> int | None:
        """The company a person's observation names.

        A company named without an INN or a phone whose name matches the person's current company (``ООО «Атлант»``
        / ``Атлант, ООО``) is that company: a second list naming a known person's employer neither gives them a
        duplicate one nor moves them to another spelling. Anywhere else a matching name is only a merge candidate.
        """
        if (
            person.company_id is not None
            and key.ref is not None
            and key.client_id is None
            and not (key.phones or key.emails)
            and key.name
        ):
            found = self._find_ref(key.ref)
            named = self._state(self._live_id(found[1]) or 0) if found is not None and found[0] == "client" else None
            if named is not None and any(named.values(k) for k in self.policy.identity_keys):
                return named.id  # a company known by its INN is surer than a name
            current = self._live_id(person.company_id)
            company = self._state(current) if current is not None else None
            wanted = company_name_key(key.name)
            if company is not None and wanted is not None and wanted == company_name_key(company.name or ""):
                if found is None:
                    self._link_ref(key.ref, "client", company.id)
                return company.id
        return self._resolve_key(key, origin, kind="company")

    def _resolve_key(self, key: ClientKey, origin: str, *, kind: str | None = None) -> int | None:
        """Find (or create) the client a ClientKey names; ``None`` when none matches and none may be made."""
        kind = kind or key.kind
        if key.client_id is not None:
            cid = self._live_id(key.client_id)
            if cid is None:
                raise BadInput(f"client {key.client_id} does not exist")
            return cid
        phones, emails = self._phones(key.phones), self._emails(key.emails)
        self._lock([*(str(key.ref) for _ in [0] if key.ref), *phones, *emails])
        cid = self._resolve(ref=key.ref, keys=[], phones=phones, emails=emails, kind=kind, reason_origin=origin)
        if cid is not None:
            if key.name_if_empty and key.name:
                self._name_if_empty(cid, key.name, origin)
            return cid
        if not key.create or not self.policy.create_unknown_clients:
            return None
        if not (key.ref or phones or emails or key.name):
            return None
        source = key.ref or SourceRef(
            system=origin.split(":", 1)[0],
            account=origin.partition(":")[2],
            entity="client",
            id=(phones or emails or [key.name or ""])[0],
        )
        sub = ClientObservation(
            source=source,
            client_kind=kind,
            name=key.name,
            phones=phones,
            emails=emails,
            # A weak name is observed "at the epoch": whatever another source says later outranks it.
            **({"observed_at": _WEAK} if key.name_if_empty else {}),
        )
        self._apply_client(sub, link_ref=key.ref is not None)
        return self.result.client_id

    def _name_if_empty(self, client_id: int, name: str, origin: str) -> None:
        """Name a client that has no name yet, at the lowest rank (see ``ClientKey.name_if_empty``)."""
        state = self._state(client_id, for_update=self.policy.postgres)
        if state is None or state.name:
            return
        if self._set_field(state, "name", name, origin, _iso(_WEAK)):
            system, _, account = origin.partition(":")
            ref = SourceRef(system=system, account=account, entity="client", id=str(client_id))
            self._finish_client(state, ref, ["name"], False, _now())

    # --- timeline items ----------------------------------------------------------------------------------
    def _apply_item(self, obs: InteractionObservation | DealObservation | TaskObservation) -> None:
        self._lock([str(obs.source)])
        origin = obs.source.origin
        t = _iso(obs.observed_at)
        found = self._find_ref(obs.source)
        values = self._item_values(obs)
        now = _now()
        if found is not None and found[0] == "item":
            existing = self.conn.execute(_ITEM, {"id": found[1]}).mappings().first()
            if existing is not None:
                self._update_item(dict(existing), obs, values, origin, t, now)
                return
        client_id = self._resolve_key(obs.client, origin)
        if client_id is None:
            raise BadInput(
                f"no client matches {obs.kind} {obs.source} and creating one is not allowed "
                "(give phones, emails, a ref or client_id)"
            )
        fields = {k: {"v": v, "s": origin, "t": t} for k, v in values.items() if v is not None and v != ""}
        if isinstance(obs, DealObservation) and obs.stage:
            fields["stages"] = {"v": [{"stage": obs.stage, "at": t, "s": origin}], "s": origin, "t": t}
        new_row: dict[str, Any] = {
            "client_id": client_id,
            "kind": obs.kind,
            "channel": obs.channel if isinstance(obs, InteractionObservation) else None,
            "occurred_at": getattr(obs, "occurred_at", None) or obs.observed_at,
            "fields": fields,
            "source": obs.source.model_dump(),
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        inserted = self._write(_INSERT_ITEM, new_row).inserted_primary_key
        assert inserted is not None
        new_row["id"] = item_id = int(inserted[0])
        refs = [RefView(**new_row["source"])] if self._link_ref(obs.source, "item", item_id) else None
        self._emit_item(new_row, obs.source, ITEM_EVENT[obs.kind], sorted(fields), now, refs)
        self.result.client_id, self.result.item_id = client_id, item_id

    @staticmethod
    def _item_values(obs: InteractionObservation | DealObservation | TaskObservation) -> dict[str, Any]:
        values = {k: _jsonable(v) for k, v in obs if k not in _NOT_ITEM_FIELDS}
        values.update({k: _jsonable(v) for k, v in obs.fields.items()})
        return values

    def _update_item(
        self, row: dict[str, Any], obs: Any, values: dict[str, Any], origin: str, t: str, now: datetime
    ) -> None:
        fields = dict(row["fields"])
        changed = []
        for name, value in values.items():
            if value is None or value == "":
                continue
            old = fields.get(name)
            if old is not None and _same(old.get("v"), value):
                continue
            if not self.policy.outranks(name, origin, t, old):
                continue
            fields[name] = {"v": value, "s": origin, "t": t}
            changed.append(name)
            if name == "stage":
                history = list((fields.get("stages") or {}).get("v") or [])
                history.append({"stage": value, "at": t, "s": origin})
                history.sort(key=lambda h: h["at"])
                fields["stages"] = {"v": history, "s": origin, "t": t}
        self.result.client_id, self.result.item_id = row["client_id"], row["id"]
        if not changed:
            return
        occurred = getattr(obs, "occurred_at", None)
        row.update(
            fields=fields,
            version=row["version"] + 1,
            updated_at=now,
            occurred_at=as_utc(occurred) if occurred else as_utc(row["occurred_at"]),
        )
        self._write(
            _UPDATE_ITEM,
            {
                "item_id": row["id"],
                "fields": fields,
                "version": row["version"],
                "updated_at": now,
                "occurred_at": row["occurred_at"],
            },
        )
        event_type = "interaction.changed" if obs.kind == "interaction" else ITEM_EVENT[obs.kind]
        self._emit_item(row, obs.source, event_type, sorted(changed), now)

    def _emit_item(
        self,
        row: dict[str, Any],
        origin: SourceRef,
        event_type: str,
        changed: list[str],
        now: datetime,
        refs: list[RefView] | None = None,
    ) -> None:
        state = self._states.get(row["client_id"])
        if state is None:
            client_id = self._live_id(row["client_id"]) or row["client_id"]
            state = self._state(client_id)
        assert state is not None
        self._emit(
            Event(
                type=event_type,
                client_id=state.id,
                version=state.version,
                origin=origin,
                changed=changed,
                client=state.view(),
                item=item_view(self.conn, row, refs),
                occurred_at=now,
            )
        )

    # --- refs --------------------------------------------------------------------------------------------
    def _apply_ref(self, obs: RefObservation) -> None:
        self._lock([str(obs.source)])
        if obs.target == "client":
            target = self._live_id(obs.target_id)
            if target is None:
                raise BadInput(f"client {obs.target_id} does not exist")
        else:
            if self.conn.execute(select(s.items.c.id).where(s.items.c.id == obs.target_id)).first() is None:
                raise BadInput(f"timeline item {obs.target_id} does not exist")
            target = obs.target_id
        self._link_ref(obs.source, obs.target, target)
        self.result.client_id = target if obs.target == "client" else None

    # --- outbox ------------------------------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        self._defer(
            "outbox",
            [
                {
                    "event_id": event.event_id,
                    "client_id": event.client_id,
                    "type": event.type,
                    "origin": event.origin.origin,
                    "payload": event.model_dump_json(),
                    "created_at": event.occurred_at,
                    "relayed": False,
                    "target_sink": None,
                }
            ],
        )
        self.result.events.append(event)

    # --- deferred writes ---------------------------------------------------------------------------------
    def _defer(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Rows nothing in this unit reads back from the database (its caches know them): written by flush()."""
        self.wrote = True
        self._pending[table].extend(rows)

    def flush(self) -> None:
        """Write the deferred rows, one executemany per table; the caller commits."""
        for table, statement in (("contact_points", _INSERT_POINT), ("refs", _INSERT_REF), ("outbox", _INSERT_OUTBOX)):
            rows = self._pending[table]
            if rows:
                self.conn.execute(statement, rows)
                rows.clear()


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), _PREFETCH_CHUNK):
        yield values[start : start + _PREFETCH_CHUNK]


def apply_observation(conn: Connection, obs: Any, policy: IngestPolicy, *, strict: bool = True) -> Applied:
    """Apply one observation inside the caller's write transaction; return the events it produced."""
    unit = Ingest(conn, policy, strict=strict)
    result = unit.apply(obs)
    unit.flush()
    return result
