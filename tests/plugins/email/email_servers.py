"""Real mail servers for the tests: Debian's Dovecot on a free loopback port under a temporary directory, and an
aiosmtpd SMTP server in-process. Each is stopped by the test that started it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hub.testing import free_port

USER = "crm@example.test"
PASSWORD = "secret123"

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_max_userip_connections = 200
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Archive {{
    auto = subscribe
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service auth {{
  user = root
}}
service auth-worker {{
  user = root
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def dovecot_binary() -> str:
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if found is None:
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd; .ci/run installs it)")
    return found


@dataclass
class Dovecot:
    """One Dovecot instance; ``start``/``stop`` may be called again (a restart keeps the mail)."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    tls: bool = False
    tls_port: int = 0

    @property
    def ca_file(self) -> Path:
        """The server's self-signed certificate, which a client configured with ``ca_file`` trusts."""
        return self.root / "cert.pem"

    def _ssl(self) -> str:
        if not self.tls:
            return "ssl = no"
        if not self.ca_file.exists():
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                 "-keyout", str(self.root / "key.pem"), "-out", str(self.ca_file)],
                check=True, capture_output=True,
            )  # fmt: skip
        self.tls_port = self.tls_port or free_port()
        return f"ssl = yes\nssl_cert = <{self.ca_file}\nssl_key = <{self.root / 'key.pem'}"

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    def start(self) -> None:
        binary = dovecot_binary()
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root / "mail", "nobody", "nogroup")
        users = self.root / "users"
        if not users.exists():
            users.write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        self.config.write_text(_CONFIG.format(d=self.root, port=self.port, ssl=self._ssl(), tls_port=self.tls_port))
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stopping it ends its imap and auth children too
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"dovecot exited: {err} {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not come up on {self.port}: {self.log()}")

    def stop(self) -> None:
        """Stop the server and every process it started (a restart cuts open connections, as a real one does)."""
        if self.process is not None:
            group = self.process.pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
        self.process = None

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def add_user(self, user: str, password: str) -> None:
        with (self.root / "users").open("a") as fh:
            fh.write(f"{user}:{{PLAIN}}{password}\n")

    def client(self, user: str = USER, password: str = PASSWORD) -> Any:
        from imapclient import IMAPClient

        conn = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        conn.login(user, password)
        return conn

    def append(self, folder: str, *messages: bytes, user: str = USER, password: str = PASSWORD) -> None:
        conn = self.client(user, password)
        try:
            if not conn.folder_exists(folder):
                conn.create_folder(folder)
            for message in messages:
                conn.append(folder, message)
        finally:
            conn.logout()

    def append_offline(self, folder: str, *messages: bytes, user: str = USER) -> None:
        """Deliver straight into the Maildir, as an MTA does (works while the server is stopped, and fast)."""
        base = self.root / "mail" / user / "Maildir"
        target = base if folder == "INBOX" else base / f".{folder}"
        for sub in ("tmp", "new", "cur"):
            (target / sub).mkdir(parents=True, exist_ok=True)
        stamp = f"{time.time_ns()}"
        for path in [base.parent, base, target, *(target / sub for sub in ("tmp", "new", "cur"))]:
            shutil.chown(path, "nobody", "nogroup")
        for i, data in enumerate(messages):
            name = f"{stamp}.M{i}P{os.getpid()}.hub-test"
            (target / "tmp" / name).write_bytes(data)
            shutil.chown(target / "tmp" / name, "nobody", "nogroup")
            os.rename(target / "tmp" / name, target / "new" / name)

    def env(self, user: str = USER, password: str = PASSWORD) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "username": user, "password": password, "security": "none"}


@contextmanager
def running_dovecot(tmp_path: Path, *, tls: bool = False) -> Iterator[Dovecot]:
    """A Dovecot whose every file lives in one fresh temporary directory, removed afterwards.

    Dovecot reads mail as an unprivileged user (it refuses root), who must be able to pass through every parent
    directory; pytest keeps its own temporary root private (0700) and resets it at each session start, so the
    directory is made beside it in the system temp dir, and linked from ``tmp_path`` for a failing test's logs.
    """
    root = Path(tempfile.mkdtemp(prefix="hub-dovecot-"))
    root.chmod(0o711)
    link = tmp_path / "dovecot"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(root, target_is_directory=True)
    server = Dovecot(root, tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        (link.parent / "dovecot.log").write_text(server.log())
        link.unlink()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class SmtpCapture:
    host: str
    port: int
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)


@contextmanager
def running_smtp(username: str | None = None, password: str | None = None) -> Iterator[SmtpCapture]:
    """aiosmtpd on a free loopback port; every accepted message lands in ``capture.messages``."""
    from aiosmtpd.controller import Controller

    capture = SmtpCapture("127.0.0.1", free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            capture.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
            return "250 OK"

    kwargs: dict[str, Any] = {}
    if username is not None:
        from aiosmtpd.smtp import AuthResult

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
            ok = auth_data.login == username.encode() and auth_data.password == (password or "").encode()
            return AuthResult(success=ok)

        kwargs = {"authenticator": authenticator, "auth_require_tls": False}
    controller = Controller(Handler(), hostname="127.0.0.1", port=capture.port, **kwargs)
    controller.start()
    try:
        yield capture
    finally:
        controller.stop()
