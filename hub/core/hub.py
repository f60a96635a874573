"""The Hub facade: what the daemon, the web API, the CLI and plugins use. Owns the store, bus and workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError

from hub.core import record
from hub.core.assignment import PartitionAssigner
from hub.core.bus import BusConfig
from hub.core.delivery import SinkRunner
from hub.core.dlq import DeadLetters
from hub.core.errors import BadInput, ConfigError, NotFound, database_problem
from hub.core.events import ClientView, ItemView, Observation, SourceRef, observation_adapter
from hub.core.identity import normalize_email, normalize_phone
from hub.core.inbox import Inbox
from hub.core.ingest import Applied, Ingest, IngestPolicy, apply_observation
from hub.core.logging import register_secrets
from hub.core.merge import merge_clients, unmerge
from hub.core.metrics import METRICS
from hub.core.plugins import PluginHost
from hub.core.ratelimit import Limiter, SharedRateLimiter
from hub.core.relay import Relay
from hub.core.retry import RetryPolicy
from hub.core.settings import Settings, check_plugin_settings, load_plugin_settings, secret_values
from hub.core.sinks import Sink
from hub.core.sources import Listener, Poller, UnmountedRoute, WebhookRoute
from hub.core.state import StateStore
from hub.core.store import Store, upgrade

log = structlog.get_logger("hub")
ROLES = ("all", "web", "worker", "listener")


class Hub:
    def __init__(self, settings: Settings, plugins: PluginHost | None = None) -> None:
        self.settings = settings
        self.plugins = plugins or PluginHost(
            allow=settings.load_plugins,
            autoload=not settings.disable_plugin_autoload,
            modules=settings.plugin_modules,
        )
        self.store = Store(settings.effective_database_url)
        self.bus = BusConfig(settings.bus_url, settings.partitions, settings.bus_namespace)
        self.retry_policy = RetryPolicy(
            settings.sink.max_attempts, settings.sink.backoff_base, settings.sink.backoff_max
        )
        self.inbox = Inbox(self.store, self.retry_policy)
        self.state = StateStore(self.store)
        self.dlq = DeadLetters(self.store)
        self._plugin_settings: dict[str, BaseModel] = {}
        self._limiters: dict[str, Limiter] = {}
        self._runtimes: dict[str, Any] = {}
        self._runtime_lock = threading.Lock()
        self.sinks: dict[str, Sink] = {}
        self.runners: dict[str, SinkRunner] = {}
        self.assigner: PartitionAssigner | None = None
        self.routes: list[WebhookRoute] = []
        self.unmounted_routes: list[UnmountedRoute] = []
        self.sources: list[Listener | Poller] = []
        self.relay = Relay(self.store, self.bus, lambda: sorted(self.sinks), batch=settings.relay_batch)
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self.role: str | None = None
        self.started = False
        self._identity_keys: dict[str, Any] = {}
        register_secrets(secret_values(settings))
        self._load_plugin_settings()
        self.plugins.each("hub_register_identity_keys", register=self._register_identity_key)
        self.policy = IngestPolicy(
            region=settings.default_region,
            system_of_record=settings.system_of_record,
            create_unknown_clients=settings.create_unknown_clients,
            identity_keys=self._identity_keys,
            postgres=self.store.is_postgres,
        )

    # --- plugin registration -----------------------------------------------------------------------------
    def _load_plugin_settings(self) -> None:
        models: dict[str, type] = {}
        owners: dict[str, str] = {}

        def register(name: str, model: type) -> None:
            models[name] = model
            owners[name] = self.plugins.calling or name

        self.plugins.each("hub_register_settings", register=register)
        check_plugin_settings(self.settings, models)
        for name, model in models.items():
            try:
                loaded = load_plugin_settings(self.settings, name, model)
            except ConfigError as exc:  # one plugin's bad settings take that plugin down, not the hub
                owner = owners[name]
                info = self.plugins.info.get(owner)
                self.plugins.set_aside(owner, info.version if info else "-", info.module if info else owner, str(exc))
                continue
            register_secrets(secret_values(loaded))
            self._plugin_settings[name] = loaded

    def _register_identity_key(self, key: str, normalise: Any) -> None:
        self._identity_keys[key] = normalise

    def plugin_settings(self, name: str) -> Any:
        """The settings model a plugin registered under ``name`` (read from env, .env and TOML)."""
        try:
            return self._plugin_settings[name]
        except KeyError:
            raise ConfigError(f"no settings registered for plugin {name!r}") from None

    def runtime(self, key: str, factory: Callable[[], Any]) -> Any:
        """One object per hub and key (a plugin's connections to its accounts), made on first use.

        The plugin's web routes, sink, pollers and CLI commands share it; ``release_runtime`` closes it.
        """
        with self._runtime_lock:
            found = self._runtimes.get(key)
            if found is None:
                found = self._runtimes[key] = factory()
            return found

    def release_runtime(self, key: str) -> None:
        """Forget the object ``runtime(key)`` made, calling its ``close()`` if it has one."""
        with self._runtime_lock:
            found = self._runtimes.pop(key, None)
        close = getattr(found, "close", None)
        if callable(close):
            close()

    def limiter(self, name: str, spec: str) -> Limiter:
        """The one rate limiter for an external account (``"bitrix24:acme.bitrix24.ru"``): its budget lives in the
        database, so every process of this hub (``hub run``, a CLI backfill, workers) shares it."""
        limiter = self._limiters.get(name)
        if limiter is None:
            calls, waits = METRICS.api_calls.labels(name), METRICS.limit_wait.labels(name)

            def count(requests: int, waited: float) -> None:
                calls.inc(requests)
                if waited:
                    waits.inc(waited)

            limiter = self._limiters[name] = SharedRateLimiter(self.store, name, spec, on_acquire=count)
        return limiter

    def _register_route(self, route: WebhookRoute) -> None:
        """Mount a plugin's route only if it is API (token-guarded) or verifies its sender; remember why not."""
        reason = route.unmounted_because()
        if reason is None:
            self.routes.append(route)
            return
        plugin = self.plugins.calling or "?"
        self.unmounted_routes.append(UnmountedRoute(plugin, route.path, reason))
        log.info("webhook route not mounted", plugin=plugin, path=route.path, reason=reason)

    def _register_sink(self, sink: Sink) -> None:
        if not sink.name or not sink.system:
            raise ConfigError(f"sink {sink!r} needs a name and a system")
        if sink.name in self.sinks:
            raise ConfigError(f"two sinks are named {sink.name!r}; each connected account needs its own name")
        self.sinks[sink.name] = sink

    # --- lifecycle ---------------------------------------------------------------------------------------
    def migrate(self) -> None:
        upgrade(self.store)

    def prepare(self) -> None:
        """Migrate (if allowed), run ``hub_startup`` and collect sinks, routes and inbox handlers."""
        if self.settings.auto_migrate:
            self.migrate()
        self.plugins.each("hub_startup", hub=self)
        self.plugins.each("hub_register_sinks", hub=self, register=self._register_sink)
        self.plugins.each("hub_register_routes", hub=self, register=self._register_route)
        self.plugins.each(
            "hub_register_inbox_handlers",
            hub=self,
            register=lambda kind, handler: self.inbox.handlers.__setitem__(kind, handler),
        )

    def start(self, role: str = "all") -> None:
        """Start the background work of ``role`` (the web server itself is the daemon's)."""
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if not self.bus.durable and role != "all":
            raise ConfigError(
                "the embedded bus (memory://) runs in one process: use 'hub run --role all', or set "
                "HUB_BUS_URL=amqp://... to split roles across processes"
            )
        self.role = role
        self.prepare()
        if role in ("all", "worker"):
            self._spawn("relay", self.relay.run, self.stop_event)
            if self.bus.is_amqp:
                self.assigner = PartitionAssigner(self.state, self.bus.partitions)
                self.assigner.beat()  # join before subscribing, so a newcomer takes only its share
                self._spawn("assignment", self.assigner.run, self.stop_event)
            for sink in self.sinks.values():
                limiter = self.limiter(sink.name, sink.rate_limit) if sink.rate_limit else None
                policy = RetryPolicy(
                    sink.max_attempts or self.retry_policy.max_attempts,
                    sink.backoff_base or self.retry_policy.base,
                    sink.backoff_max or self.retry_policy.cap,
                )
                runner = SinkRunner(
                    self.store,
                    self.bus,
                    sink,
                    policy,
                    limiter,
                    timeout=sink.timeout or self.settings.sink.timeout,
                    on_recorded=None if self.bus.durable else self.relay.on_recorded,
                    assigner=self.assigner,
                )
                self.runners[sink.name] = runner
                self._spawn(f"sink:{sink.name}", runner.run, self.stop_event)
            self._spawn("inbox", self.inbox.run, self.stop_event)
        if role in ("all", "listener"):
            self.plugins.each("hub_register_listeners", hub=self, register=self.sources.append)
            for source in self.sources:
                if isinstance(source, Listener):
                    self._spawn(f"listener:{source.name}", self._run_listener, source)
                else:
                    self._spawn(f"poller:{source.name}", self._run_poller, source)
        self.started = True
        log.info(
            "hub started",
            role=role,
            sinks=sorted(self.sinks),
            plugins=self.plugins.names(),
            database=self.store.dialect,
            bus=self.bus.url.split("://", 1)[0],
        )

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run_listener(self, listener: Listener) -> None:
        backoff = 1.0
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                listener.run(self.stop_event)
            except Exception as exc:
                log.error(
                    "listener failed; restarting",
                    listener=listener.name,
                    error=str(exc),
                    error_type=type(exc).__name__,
                    retry_in=backoff,
                )
            if self.stop_event.is_set():
                return
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 60.0)
            self.stop_event.wait(backoff)

    def _run_poller(self, poller: Poller) -> None:
        if not poller.run_at_start and self.stop_event.wait(poller.interval):
            return
        while not self.stop_event.is_set():
            try:
                poller.poll()
            except Exception as exc:
                log.error(
                    "poller failed; will run again", poller=poller.name, error=str(exc), error_type=type(exc).__name__
                )
            if self.stop_event.wait(poller.interval):
                return

    def stop(self, grace: float | None = None) -> None:
        """Drain and stop: workers finish the batch in hand, then ``hub_shutdown`` runs."""
        grace = self.settings.shutdown_grace if grace is None else grace
        self.stop_event.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("stopped with work still running", threads=alive)
        self.plugins.each("hub_shutdown", hub=self)
        self.store.dispose()
        self.started = False
        log.info("hub stopped")

    # --- ingest ------------------------------------------------------------------------------------------
    @staticmethod
    def parse_observation(data: Any, context: dict[str, Any] | None = None) -> Observation:
        """Validate a JSON-ready dict as an observation, with a message that names every bad field.

        ``context`` (``hub.core.bounds.validation_context``) gives the phone region and the clock skew allowed.
        """
        try:
            return observation_adapter.validate_python(data, context=context)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
            raise BadInput(f"invalid observation: {problems}") from exc

    def ingest(self, obs: Any, *, strict: bool = True) -> Applied:
        """Apply one observation in its own transaction; return what it did. Raises BadInput, storing nothing."""
        try:
            with self.store.write() as conn:
                result = apply_observation(conn, obs, self.policy, strict=strict)
        except BadInput:
            METRICS.observations.labels(obs.kind, "rejected").inc()
            raise
        METRICS.observations.labels(obs.kind, "applied" if result.events else "unchanged").inc()
        for event in result.events:
            METRICS.events_emitted.labels(event.type).inc()
        for warning in result.warnings:
            log.warning("observation partly rejected", source=str(obs.source), problem=warning)
        if result.events:
            self.relay.wake.set()
        return result

    def ingest_many(self, observations: Sequence[Any], *, strict: bool = True) -> list[Applied | BadInput]:
        """Apply many observations in one transaction, as one unit of work; a refused one is skipped alone.

        Lookups made for one observation serve the next ones of the batch. A refused observation has written
        nothing (see ``Ingest.apply``); should anything else fail, the batch is rolled back and applied again
        one observation per savepoint, so one bad observation never costs the others.
        """
        try:
            results = self._ingest_batch(observations, strict)
        except Exception as exc:
            log.warning("batch ingest failed; applying one by one", error=str(exc), error_type=type(exc).__name__)
            results = []
            with self.store.write() as conn:
                for obs in observations:
                    try:
                        with conn.begin_nested():
                            results.append(apply_observation(conn, obs, self.policy, strict=strict))
                    except BadInput as bad:
                        results.append(bad)
                    except (DataError, OverflowError) as exc:  # a value the database cannot hold: refuse it alone
                        results.append(BadInput(f"the database cannot store this observation: {database_problem(exc)}"))
        emitted = 0
        for obs, result in zip(observations, results, strict=True):
            if isinstance(result, BadInput):
                METRICS.observations.labels(obs.kind, "rejected").inc()
                continue
            METRICS.observations.labels(obs.kind, "applied" if result.events else "unchanged").inc()
            emitted += len(result.events)
        if emitted:
            self.relay.wake.set()
        return results

    def _ingest_batch(self, observations: Sequence[Any], strict: bool) -> list[Applied | BadInput]:
        results: list[Applied | BadInput] = []
        with self.store.write() as conn:
            unit = Ingest(conn, self.policy, strict=strict)
            unit.prefetch(observations)
            for obs in observations:
                try:
                    results.append(unit.apply(obs))
                except BadInput as bad:
                    if unit.wrote:
                        raise RuntimeError("an observation was refused after it wrote") from bad
                    results.append(bad)
            unit.flush()
        return results

    # --- reading -----------------------------------------------------------------------------------------
    def find_clients(
        self,
        *,
        phone: str | None = None,
        email: str | None = None,
        q: str | None = None,
        ref: SourceRef | None = None,
        limit: int = 50,
    ) -> list[ClientView]:
        with self.store.read() as conn:
            ids: list[int | None]
            if ref is not None:
                found = record.find_ref(conn, ref)
                ids = [record.live_id(conn, found[1])] if found and found[0] == "client" else []
            elif phone:
                ids = [*record.find_by_point(conn, "phone", [normalize_phone(phone, self.settings.default_region)])]
            elif email:
                ids = [*record.find_by_point(conn, "email", [normalize_email(email)])]
            elif q:
                ids = [*record.search_clients(conn, q, limit)]
            else:
                raise BadInput("give phone, email, q or ref to find clients")
            return record.client_views(conn, [i for i in ids if i is not None][:limit])

    def get_client(self, client_id: int) -> ClientView:
        with self.store.read() as conn:
            state = record.load_client(conn, client_id)
            if state is None:
                raise NotFound(f"client {client_id} does not exist")
            return state.view()

    def timeline(self, client_id: int, *, limit: int = 100, kinds: list[str] | None = None) -> list[ItemView]:
        with self.store.read() as conn:
            live = record.live_id(conn, client_id)
            if live is None:
                raise NotFound(f"client {client_id} does not exist")
            return record.timeline(conn, live, limit=limit, kinds=kinds)

    def find_item(self, ref: SourceRef) -> ItemView | None:
        """The timeline item (interaction, deal, task) known outside as ``ref``, if any."""
        with self.store.read() as conn:
            found = record.find_ref(conn, ref)
            if found is None or found[0] != "item":
                return None
            return record.get_item(conn, found[1])

    def get_item(self, item_id: int) -> ItemView:
        with self.store.read() as conn:
            item = record.get_item(conn, item_id)
        if item is None:
            raise NotFound(f"timeline item {item_id} does not exist")
        return item

    def iter_clients(
        self, *, since: datetime | None = None, system: str | None = None, page: int = 1000
    ) -> Iterator[ClientView]:
        """Every live client, streamed page by page (constant memory), optionally filtered."""
        after = 0
        while True:
            with self.store.read() as conn:
                ids = record.iter_client_ids(conn, after=after, limit=page, since=since, system=system)
                views = record.client_views(conn, ids)
            yield from views
            if len(ids) < page:
                return
            after = ids[-1]

    def iter_items(
        self,
        *,
        kind: str | None = None,
        channel: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        system: str | None = None,
        page: int = 1000,
    ) -> Iterator[ItemView]:
        """Every timeline item (interaction, deal, task), streamed page by page, optionally filtered."""
        after = 0
        while True:
            with self.store.read() as conn:
                items = record.iter_items(
                    conn, after=after, limit=page, kind=kind, channel=channel, since=since, until=until, system=system
                )
            yield from items
            if len(items) < page:
                return
            after = items[-1].id

    def merge(self, winner_id: int, loser_id: int, *, actor: str = "cli") -> int:
        with self.store.write() as conn:
            merge_id, _events = merge_clients(conn, winner_id, loser_id, actor=actor)
        log.info("clients merged", winner=winner_id, loser=loser_id, merge_id=merge_id, actor=actor)
        self.relay.wake.set()
        return merge_id

    def unmerge(self, merge_id: int) -> None:
        with self.store.write() as conn:
            unmerge(conn, merge_id)
        log.info("merge undone", merge_id=merge_id)
        self.relay.wake.set()

    def merge_candidates(self, status: str = "open") -> list[dict[str, Any]]:
        from sqlalchemy import select

        from hub.core import schema as s

        with self.store.read() as conn:
            rows = conn.execute(
                select(s.merge_candidates)
                .where(s.merge_candidates.c.status == status)
                .order_by(s.merge_candidates.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    # --- health ------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        plugins: dict[str, Any] = {}
        for name, report in self.plugins.each("hub_health", hub=self):
            if report is not None:
                plugins[name] = report
        for name, info in self.plugins.info.items():
            if info.error and name not in plugins:
                plugins[name] = {"status": "down", "error": info.error}
        return {"database": self.store.ping(), "plugins": plugins}

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until the outbox is relayed and the inbox is empty (tests, demo, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.relay.lag() == 0 and self.inbox.pending() == 0:
                return True
            time.sleep(0.05)
        return False


def observations_from(items: Iterable[Any]) -> list[Observation]:
    return [Hub.parse_observation(i) for i in items]
