"""The telephony plugin's settings: ``HUB_TELEPHONY__AMI__HOST``, ``HUB_TELEPHONY__MANGO__API_KEY``..."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from hub.core.settings import StrongSecret

from .dialpolicy import DialPolicy


class AMISettings(BaseModel):
    """An Asterisk Manager Interface account (``manager.conf``); the listener runs only when ``host`` is set."""

    host: str | None = Field(default=None, description="Asterisk host; empty disables the AMI listener.")
    account: str = Field(
        default="", description="How this PBX is named in source refs (keep it stable; name it when there are several)."
    )
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = ""
    secret: SecretStr = SecretStr("")
    events: str = Field(default="call,agent", description="Event classes asked for at login ('Events:' header).")
    reconnect_initial: float = Field(
        default=1.0, gt=0, description="First delay before reconnecting, seconds; doubles."
    )
    reconnect_max: float = Field(
        default=60.0, gt=0, description="Longest delay between reconnection attempts, seconds."
    )
    ping_interval: float = Field(default=20.0, gt=0, description="Keepalive Ping after this many idle seconds.")
    connect_timeout: float = Field(default=10.0, gt=0)
    originate_channel: str = Field(default="PJSIP/{extension}", description="Channel an operator's phone is rung on.")
    originate_context: str = Field(
        default="from-internal", description="Dialplan context the customer's number is dialled in."
    )
    dial_format: str = Field(
        default="{digits}",
        description="How click-to-call dials the customer: {digits} (79161234567), {e164}, {national} (9161234567).",
    )
    originate_timeout: float = Field(
        default=30.0, gt=0, description="Seconds the operator's phone rings before giving up."
    )
    recording_variables: list[str] = Field(
        default_factory=lambda: ["MIXMONITOR_FILENAME", "RECORDING_FILE", "CALLFILENAME"],
        description="Channel variables (VarSet) that carry the recording file of a call.",
    )


class MangoSettings(BaseModel):
    """Mango Office VPBX API: the key and salt from the VPBX 'API connector' page."""

    api_key: str = ""
    api_salt: StrongSecret = SecretStr("")
    api_url: str = Field(default="https://app.mango-office.ru/vpbx/", description="Base URL of the VPBX API.")
    account: str = Field(default="", description="How this VPBX is named in source refs; defaults to the API key.")


class ZadarmaSettings(BaseModel):
    """Zadarma API key and secret (personal account, 'Settings / API')."""

    key: str = ""
    secret: StrongSecret = SecretStr("")
    api_url: str = Field(default="https://api.zadarma.com", description="Base URL of the Zadarma API.")
    account: str = Field(default="", description="How this account is named in source refs; defaults to the API key.")
    timezone: str = Field(
        default="Europe/Moscow", description="Time zone of 'call_start' in notifications (the account's)."
    )
    default_sip: str | None = Field(
        default=None, description="SIP number for click-to-call when the operator has none."
    )


class TelephonySettings(BaseModel):
    """Every PBX the hub listens to and the behaviour shared by all of them."""

    ami: AMISettings = AMISettings()
    mango: MangoSettings = MangoSettings()
    zadarma: ZadarmaSettings = ZadarmaSettings()
    region: str | None = Field(
        None, description="Region for numbers without a country code; default HUB_DEFAULT_REGION."
    )
    create_callback_tasks: bool = Field(default=True, description="A missed inbound call creates a call-back task.")
    callback_due_minutes: int = Field(
        default=15, ge=0, description="A call-back task is due this many minutes after the call."
    )
    extensions: dict[str, str] = Field(
        default_factory=dict,
        description="Operator extensions: extension number -> operator (a name or an e-mail known to the CRMs).",
    )
    max_extension_length: int = Field(
        5, ge=1, le=9, description="Digit strings up to this length are extensions (internal), not phone numbers."
    )
    generic_token: StrongSecret | None = Field(
        None,
        description="The generic call-event form exists only with this token (16+ characters), sent as "
        "'Authorization: Bearer <token>'.",
    )
    dial: DialPolicy = Field(
        default_factory=DialPolicy, description="Which numbers click-to-call may dial (toll-fraud protection)."
    )
    click_to_call: Literal["ami", "mango", "zadarma"] | None = Field(
        None,
        description="Which PBX places click-to-call requests; default: the first configured of ami, mango, zadarma.",
    )
    originate_wait_s: float = Field(
        default=45.0, gt=0, description="How long an AMI click-to-call waits for Asterisk's OriginateResponse."
    )
    live_ring_max_s: float = Field(
        default=300.0, gt=0, description="A call still 'ringing' after this many seconds leaves the live list."
    )
    live_max_age_s: float = Field(
        default=4 * 3600.0, gt=0, description="Any live call not heard of for this long leaves the live list."
    )
    call_events_retention_hours: float = Field(
        default=48.0, gt=0, description="Raw webhook events of a call are kept this long (late recordings, replays)."
    )
