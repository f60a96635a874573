"""Run ``hub`` as users do, in a subprocess with a clean ``HUB_*`` environment; stop it after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hub_env(backend, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(backend.env())
    env.update({"PYTHONPATH": str(ROOT), "HUB_DISABLE_PLUGIN_AUTOLOAD": "1", "HUB_LOG_FORMAT": "json"})
    env.update(extra)
    return env


def hub_cli(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


class Daemon:
    """``hub run ...`` in the background, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log_path = log
        self._log = log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", *args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
