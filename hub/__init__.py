"""crm-hub: one client record and one timeline across every tool a company talks to its customers with.

Plugin authors import from here: ``from hub import hookimpl`` and the vocabulary in :mod:`hub.core.events`.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("hub")

__all__ = ["__version__", "hookimpl"]
