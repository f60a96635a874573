"""Settings: environment (``HUB_`` prefix, nested ``__``), ``.env`` and a TOML file, in that order of priority.

Plugins declare their own section with ``hub_register_settings``; it is read the same way, from
``HUB_<PLUGIN>__<FIELD>`` and the ``[plugin]`` table of the TOML file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from hub.core.auth import secret_problem
from hub.core.errors import ConfigError
from hub.core.unknown_settings import Key, check_core, check_sections, env_keys, toml_keys


def _strong(value: SecretStr) -> SecretStr:
    problem = secret_problem(value.get_secret_value()) if value.get_secret_value() else None
    if problem:
        raise ValueError(problem)
    return value


StrongSecret = Annotated[SecretStr, AfterValidator(_strong)]
"""A token or webhook secret: empty (not configured) or at least 16 characters, whatever model it is in."""

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(1_000_000, description="Larger request bodies are refused with 413.")
    api_token: StrongSecret | None = Field(
        None,
        description="When set, /api/* needs 'Authorization: Bearer <token>' (16+ characters); needed beyond loopback.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the hub answers to besides localhost, 127.0.0.1 and ::1 ('*.example.com', '*').",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Other origins (https://crm.example.com) allowed to send state-changing requests.",
    )
    allow_remote_without_token: bool = Field(
        False, description="Listen beyond loopback with no API token: anyone reaching the port reads the record."
    )
    auth_failures: str = Field(
        "10/min burst 10", description="Failed authentications allowed per client address; beyond them, 429."
    )
    access_log: bool | None = Field(
        None, description="Log who read or exported client data; default: on with PostgreSQL, off on SQLite."
    )
    content_security_policy: str = Field(DEFAULT_CSP, description="Content-Security-Policy of the hub's pages.")

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    docs: bool = Field(True, description="Serve the API docs at /docs and /redoc (assets from the hub itself).")


class MetricsSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Bind address of the probe port of the worker and listener roles.")
    port: int = Field(
        9464, ge=0, le=65535, description="/metrics, /healthz, /readyz of a worker or listener process; 0: none."
    )


class ConsoleSettings(BaseModel):
    """The web console (``HUB_CONSOLE__*``): sessions and login limits; see docs/console.md."""

    secret_key: SecretStr | None = Field(
        None, description="Signs session cookies; default: a random key kept in the hub's state table."
    )
    session_hours: float = Field(12.0, gt=0, description="A login lasts this long.")
    login_attempts: int = Field(5, ge=1, description="Failed logins allowed per username and per address ...")
    login_window_s: float = Field(300.0, gt=0, description="... within this many seconds; then 429.")
    page_size: int = Field(25, ge=5, le=200, description="Rows per page of the client list.")
    timezone: str = Field(
        "Europe/Moscow",
        description="The hub's time zone: times on pages, days in filters and the days and weeks of every report.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use a name like Europe/Moscow") from exc
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SinkDefaults(BaseModel):
    max_attempts: int = Field(8, ge=1, description="Deliveries tried before an event is dead-lettered.")
    backoff_base: float = Field(0.5, gt=0, description="First retry delay in seconds; doubles each attempt.")
    backoff_max: float = Field(60.0, gt=0, description="Longest delay between two attempts, seconds.")
    timeout: float = Field(60.0, gt=0, description="Seconds one delivery may take before it counts as failed.")


class Settings(BaseSettings):
    """The core's settings. Every field is ``HUB_<FIELD>`` in the environment (``HUB_HTTP__PORT``...)."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(Path("var"), description="Where the embedded database lives.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in data_dir.")
    bus_url: str = Field("memory://", description="kombu URL; amqp://guest:guest@127.0.0.1:5672// in production.")
    bus_namespace: str = Field(
        "hub",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of exchange and queue names, for hubs sharing one broker.",
    )
    default_region: str = Field("RU", description="Region for phone numbers written without a country code.")
    max_clock_skew_s: float = Field(
        300.0, ge=0, description="An observation dated more than this many seconds ahead of the hub's clock is refused."
    )
    partitions: int = Field(8, ge=1, le=256, description="Event queues per sink; a client always maps to one.")
    system_of_record: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per field, sources (system or system:account) that win over newer values from others.",
    )
    create_unknown_clients: bool = Field(True, description="An interaction from an unknown number creates a client.")
    auto_migrate: bool = Field(True, description="Upgrade the database schema when the hub starts.")
    http: HttpSettings = Field(default_factory=HttpSettings)
    sink: SinkDefaults = Field(default_factory=SinkDefaults)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    relay_stuck_after: float = Field(
        60.0, gt=0, description="Seconds an event may wait unrelayed before /readyz says the relay is stuck."
    )
    log_level: str = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    load_plugins: Annotated[list[str] | None, NoDecode] = Field(
        None, description="Allowlist of plugin names to load (comma-separated)."
    )
    plugin_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Modules to register as plugins by import path (development)."
    )
    disable_plugin_autoload: bool = Field(False, description="Load no plugin from the 'hub' entry points.")
    relay_batch: int = Field(500, ge=1, description="Outbox rows relayed to the bus per round.")
    shutdown_grace: float = Field(30.0, ge=0, description="Seconds SIGTERM waits for in-flight work.")

    config_file: Path | None = Field(None, exclude=True)
    plugin_sections: dict[str, Any] = Field(default_factory=dict, exclude=True)
    given_keys: list[Key] = Field(default_factory=list, exclude=True)  # what was set, for the typo check

    @field_validator("load_plugins", "plugin_modules", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        import phonenumbers

        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}; use an ISO 3166 code such as RU, KZ, BY")
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hub.db').as_posix()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _TOML_CONTEXT.get("core", {})
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            InitSettingsSource(settings_cls, init_kwargs=toml),
            file_secret_settings,
        )


_TOML_CONTEXT: dict[str, dict[str, Any]] = {}


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _describe(exc: ValidationError, prefix: str) -> str:
    parts = []
    for err in exc.errors():
        loc = "__".join(str(p) for p in err["loc"]).upper()
        parts.append(f"{prefix}{loc}: {err['msg']}")
    return "; ".join(parts)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the core settings. ``config_file`` (or ``HUB_CONFIG``, or ``./hub.toml`` if present) is TOML."""
    path = (
        Path(config_file) if config_file else (Path(os.environ["HUB_CONFIG"]) if os.environ.get("HUB_CONFIG") else None)
    )
    if path is None and Path("hub.toml").exists():
        path = Path("hub.toml")
    data = _read_toml(path)
    given = env_keys(Path(".env")) + toml_keys(data, str(path))
    check_core(given, Settings)  # a typo must not fall back to a default silently
    core = {k: v for k, v in data.items() if not isinstance(v, dict) or k in Settings.model_fields}
    _TOML_CONTEXT["core"] = core
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {_describe(exc, 'HUB_')}") from exc
    finally:
        _TOML_CONTEXT.pop("core", None)
    settings.config_file = path
    settings.given_keys = given
    settings.plugin_sections = {k: v for k, v in data.items() if isinstance(v, dict) and k not in Settings.model_fields}
    return settings


def check_plugin_settings(settings: Settings, models: dict[str, type[BaseModel]]) -> None:
    """Refuse ``HUB_<PLUGIN>__*`` variables and ``[plugin]`` keys that the plugin's model does not have, and any
    top-level name that is neither a core setting nor a plugin section. Sections of plugins installed but not
    loaded are left alone, with a warning."""
    from importlib.metadata import entry_points

    import structlog

    installed = [ep.name for ep in entry_points(group="hub")]
    idle = check_sections(settings.given_keys, Settings, models, installed)
    if idle:
        structlog.get_logger("hub.settings").warning(
            "settings given for plugins that are not loaded; ignored", plugins=idle
        )


def load_plugin_settings(settings: Settings, name: str, model: type[BaseModel]) -> BaseModel:
    """Read one plugin's section: ``HUB_<NAME>__<FIELD>`` over ``.env`` over the TOML ``[name]`` table."""
    toml_section = settings.plugin_sections.get(name, {})

    class _Section(BaseSettings, model):  # type: ignore[misc,valid-type]
        model_config = SettingsConfigDict(
            env_prefix=f"HUB_{name.upper()}__",
            env_nested_delimiter="__",
            env_file=".env",
            env_file_encoding="utf-8",
            extra="ignore",
        )

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                dotenv_settings,
                InitSettingsSource(settings_cls, init_kwargs=toml_section),
            )

    _Section.__name__ = model.__name__
    try:
        loaded = _Section()
    except ValidationError as exc:
        raise ConfigError(f"invalid settings for plugin {name}: {_describe(exc, f'HUB_{name.upper()}__')}") from exc
    return model.model_validate(loaded.model_dump())


SECRET_URL_FIELDS = ("database_url", "bus_url")
"""Core settings that are URLs with credentials: their passwords are secrets, ``hub config show`` masks them."""


def url_password(url: str | None) -> str | None:
    """The password in ``scheme://user:password@host`` (which may itself contain ``@``), or ``None``."""
    if not url or "://" not in url:
        return None
    rest = url.split("://", 1)[1]
    # the last "@" ends the credentials: a password may hold "@" or "/" (an "@" in the path over-masks, safely)
    at = rest.rfind("@")
    if at < 0:
        return None
    user, colon, password = rest[:at].partition(":")
    if "/" in user:
        return None
    return password if colon and password else None


def secret_values(model: BaseModel) -> list[str]:
    """Every ``SecretStr`` value in a settings tree (and the passwords of the database and bus URLs), so logs can
    redact them wherever they appear, whatever their length."""
    found: list[str] = []
    for name in SECRET_URL_FIELDS:
        password = url_password(getattr(model, name, None))
        if password:
            found.append(password)

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            if raw:
                found.append(raw)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(model)
    return found


def masked_dump(model: BaseModel) -> dict[str, Any]:
    """The settings as JSON-ready data with every secret shown as ``**********``."""
    data = model.model_dump(mode="json")

    def mask(value: Any, template: Any) -> Any:
        if isinstance(template, SecretStr):
            return "**********" if template.get_secret_value() else ""
        if isinstance(template, BaseModel) and isinstance(value, dict):
            return {k: mask(value.get(k), getattr(template, k)) for k in value}
        return value

    masked = {k: mask(v, getattr(model, k, None)) for k, v in data.items()}
    for name in SECRET_URL_FIELDS:
        if isinstance(masked.get(name), str):
            masked[name] = mask_url(masked[name])
    return masked


def mask_url(url: str) -> str:
    """``url`` with its password shown as ``***`` (``redis://:***@host``, ``amqp://hub:***@mq``)."""
    password = url_password(url)
    if not password:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.replace(':' + password + '@', ':***@', 1)}"
