"""The telephony plugin's working parts for one hub: live calls, call intake, the AMI listener, click-to-call."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from .clicktocall import ClickToCall, choose_provider
from .intake import CallIntake
from .listener import AMIListener
from .live import LiveCalls
from .replay import ZadarmaReplayGuard
from .settings import TelephonySettings

if TYPE_CHECKING:
    from hub.core.hub import Hub

_RUNTIMES: WeakKeyDictionary[Any, Telephony] = WeakKeyDictionary()


class Telephony:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.settings: TelephonySettings = hub.plugin_settings("telephony")
        self.region = self.settings.region or hub.settings.default_region
        self.live = LiveCalls(hub, ring_max_s=self.settings.live_ring_max_s, max_age_s=self.settings.live_max_age_s)
        self.intake = CallIntake(hub, self.settings, self.live)
        self.listener: AMIListener | None = None
        self.click = ClickToCall(hub, self.settings, listener=lambda: self.listener)
        self.zadarma_replays = ZadarmaReplayGuard(
            hub.state,
            account=self.account_zadarma,
            timezone=self.settings.zadarma.timezone,
            retention=timedelta(hours=self.settings.call_events_retention_hours),
        )

    @property
    def account_mango(self) -> str:
        return self.settings.mango.account or self.settings.mango.api_key

    @property
    def account_zadarma(self) -> str:
        return self.settings.zadarma.account or self.settings.zadarma.key

    def ami_listener(self) -> AMIListener:
        if self.listener is None:
            self.listener = AMIListener(self.settings, self.intake, self.live)
        return self.listener

    def sources(self) -> list[str]:
        found = ["generic"] if self.settings.generic_token else []
        if self.settings.ami.host:
            found.append("asterisk")
        if self.settings.mango.api_key:
            found.append("mango")
        if self.settings.zadarma.key:
            found.append("zadarma")
        return found

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"status": "ok", "sources": self.sources()}
        try:
            report["click_to_call"] = choose_provider(self.settings)
        except Exception:
            report["click_to_call"] = None
        if self.listener is not None:
            connection = self.listener.connection
            connected = connection.connected.is_set()
            report["ami"] = {
                "connected": connected,
                "connects": connection.stats.connects,
                "malformed_packets": connection.stats.malformed,
                "calls_reported": self.listener.calls_reported,
                "active_calls": self.listener.tracker.active_calls,
            }
            if connection.stats.last_error:
                report["ami"]["last_error"] = connection.stats.last_error
            if not connected:
                report["status"] = "degraded"
        return report


def telephony(hub: Hub) -> Telephony:
    """The one telephony runtime of ``hub`` (created on first use)."""
    runtime = _RUNTIMES.get(hub)
    if runtime is None:
        runtime = _RUNTIMES[hub] = Telephony(hub)
    return runtime


def forget(hub: Hub) -> None:
    _RUNTIMES.pop(hub, None)
