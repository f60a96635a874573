"""The plugin host: loads plugins from the ``hub`` entry points (built-in ones too), isolates their failures.

This thin facade is the only code that touches ``pm.hook``. Environment: ``HUB_LOAD_PLUGINS`` (allowlist),
``HUB_DISABLE_PLUGIN_AUTOLOAD``, ``HUB_PLUGIN_MODULES`` (modules registered by import path, for development),
``HUB_TRACE_PLUGINS=1`` (log every hook call).
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy
import structlog

from hub.core import hookspecs

log = structlog.get_logger("hub.plugins")


@dataclass
class PluginInfo:
    name: str
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None  # why loading or a lifecycle hook failed


class PluginHost:
    def __init__(
        self,
        *,
        allow: list[str] | None = None,
        autoload: bool = True,
        extra: Iterable[tuple[str, Any]] = (),
        modules: Iterable[str] = (),
    ) -> None:
        self.pm = pluggy.PluginManager("hub")
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.calling: str | None = None  # the plugin whose hook ``each`` is running (for registrations)
        if autoload:
            self._load_entry_points(allow)
        for path in modules:
            if self.pm.get_plugin(path) is None and path not in self.info:
                self._register_module(path)
        for name, plugin in extra:
            if allow is None or name in allow:
                self.register(name, plugin)
        self.pm.check_pending()  # every plugin with an unknown hook was set aside above: this cannot fail
        if os.environ.get("HUB_TRACE_PLUGINS", "").lower() not in ("", "0", "false", "no"):
            # Info, not debug: whoever sets the variable wants to see the calls at the default log level.
            self.pm.trace.root.setwriter(lambda msg: log.info("hook", trace=msg.rstrip()))
            self.pm.enable_tracing()

    def _load_entry_points(self, allow: list[str] | None) -> None:
        for ep in entry_points(group="hub"):
            if allow is not None and ep.name not in allow:
                continue
            if self.pm.get_plugin(ep.name) is not None:
                continue
            version = ep.dist.version if ep.dist else "?"
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the hub down
                self.info[ep.name] = PluginInfo(ep.name, version, ep.value, error=f"failed to load: {exc}")
                log.error("plugin failed to load", plugin=ep.name, error=str(exc), error_type=type(exc).__name__)
                continue
            self.register(ep.name, plugin, version=version)

    def _register_module(self, path: str) -> None:
        try:
            plugin = importlib.import_module(path)
        except Exception as exc:  # HUB_PLUGIN_MODULES names a module that does not import: say so, go on
            self.set_aside(path, "-", path, f"failed to import {path}: {type(exc).__name__}: {exc}")
            return
        self.register(path, plugin)

    def register(self, name: str, plugin: Any, *, version: str | None = None) -> None:
        """Register ``plugin``; one that does not fit the hook specs is set aside, reported ``down`` with why."""
        module = getattr(plugin, "__name__", type(plugin).__name__)
        if version is None:
            version = str(getattr(plugin, "__version__", "") or "-")
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:  # a hook with arguments its spec does not have
            self.set_aside(name, version, module, f"invalid hook: {exc}")
            return
        callers = self.pm.get_hookcallers(plugin) or []
        unknown = sorted(c.name for c in callers if not c.has_spec())
        if unknown:
            self.pm.unregister(plugin)
            known = [n for n in dir(hookspecs) if n.startswith("hub_")]
            hints = []
            for hook in unknown:
                close = difflib.get_close_matches(hook, known, n=1)
                hints.append(f"{hook}" + (f" (did you mean {close[0]}?)" if close else ""))
            self.set_aside(name, version, module, f"unknown hook {', '.join(hints)}")
            return
        hooks = sorted(c.name for c in callers)
        self.info[name] = PluginInfo(name, version, module, hooks)
        log.debug("plugin loaded", plugin=name, version=version, hooks=hooks)

    def set_aside(self, name: str, version: str, module: str, reason: str) -> None:
        """Keep a plugin out of every hook call from now on, and remember why (``hub plugins list``, health)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        info = self.info.get(name)
        self.info[name] = PluginInfo(
            name,
            info.version if info else version,
            info.module if info else module,
            info.hooks if info else [],
            error=reason,
        )
        log.error("plugin set aside", plugin=name, error=reason)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def names(self) -> list[str]:
        return sorted(self.info)

    def each(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook_name`` on its own; one plugin's exception does not stop the rest."""
        results: list[tuple[str, Any]] = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            name = impl.plugin_name
            self.calling = name
            try:
                # Through pluggy's own caller (one plugin at a time), so tracing and hook monitoring see the call.
                others = [p for p in self.pm.get_plugins() if p is not impl.plugin]
                returned = self.pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)
                results.append((name, returned[0] if returned else None))
            except Exception as exc:
                log.error(
                    "plugin hook failed",
                    plugin=name,
                    hook=hook_name,
                    error=str(exc),
                    error_type=type(exc).__name__,
                    exc_info=True,
                )
                if name in self.info:
                    self.info[name].error = f"{hook_name}: {type(exc).__name__}: {exc}"
            finally:
                self.calling = None
        return results
