"""P9: first sync of N emails (default 10,000) from a local Dovecot into the hub, and the share of the test corpus
of hard mail decoded exactly.

Starts Debian's Dovecot on a free loopback port in a temporary directory, delivers N varied messages into the
Maildir (UTF-8 and windows-1251, plain, quoted-printable, base64, HTML, attachments; 1,000 correspondents), then:
- baseline: a bare IMAPClient reading every message with ``UID FETCH BODY.PEEK[]`` in batches of 200;
- the hub: one ``hub email sync`` pass (decode, match, thread, store on an embedded SQLite hub);
and prints messages/s for both, their ratio and the peak RSS of the sync. The corpus figure compares every
decoded field of ``tests/plugins/email/corpus`` with its ``expected.json``.

Run: ``python bench/email_sync.py [--messages N]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import quopri
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "plugins" / "email"))

from email_servers import PASSWORD, USER, running_dovecot  # noqa: E402

from crm_hub_plugins.email import plugin  # noqa: E402
from crm_hub_plugins.email.connection import accounts  # noqa: E402
from crm_hub_plugins.email.matching import Company, decide  # noqa: E402
from crm_hub_plugins.email.mime import parse_message  # noqa: E402
from crm_hub_plugins.email.sync import MailboxSync  # noqa: E402
from hub.core.hub import Hub  # noqa: E402
from hub.core.logging import configure_logging  # noqa: E402
from hub.core.plugins import PluginHost  # noqa: E402
from hub.core.settings import load_settings  # noqa: E402

CORPUS = ROOT / "tests" / "plugins" / "email" / "corpus"
TEXT = "Добрый день! Прошу уточнить сроки поставки и выставить счёт на оплату. С уважением, "


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRSS:
    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def make_message(i: int) -> bytes:
    """One of five shapes, with 1,000 distinct correspondents and a reply every fifth message."""
    client = f"client{i % 1000}@company{i % 1000}.ru"
    body = TEXT * (1 + i % 6) + f"клиент {i % 1000}, письмо {i}."
    head = [
        f"From: =?utf-8?B?{base64.b64encode(f'Клиент {i % 1000}'.encode()).decode()}?= <{client}>",
        "To: sales@firma.ru",
        f"Subject: =?utf-8?B?{base64.b64encode(f'Заказ №{i}'.encode()).decode()}?=",
        f"Date: Tue, 01 Dec 2026 {i % 24:02d}:{i % 60:02d}:00 +0300",
        f"Message-ID: <bench-{i}@company{i % 1000}.ru>",
        "MIME-Version: 1.0",
    ]
    if i % 5 == 4:
        head.append(f"In-Reply-To: <bench-{i - 1}@company{(i - 1) % 1000}.ru>")
    shape = i % 5
    if shape == 0:
        head += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        payload = body.encode()
    elif shape == 1:
        head += ["Content-Type: text/plain; charset=windows-1251", "Content-Transfer-Encoding: quoted-printable"]
        payload = quopri.encodestring(body.encode("cp1251"))
    elif shape == 2:
        head += ["Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: base64"]
        html = f"<html><head><style>p{{}}</style></head><body><p>{body}</p></body></html>"
        payload = base64.encodebytes(html.encode())
    else:
        head.append('Content-Type: multipart/mixed; boundary="b"')
        attachment = base64.encodebytes(bytes(range(256)) * (4 + i % 8)).decode()
        payload = (
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(body.encode()).decode()
            + "\r\n--b\r\nContent-Type: application/pdf\r\n"
            + "Content-Disposition: attachment; filename*=utf-8''%D0%A1%D1%87%D0%B5%D1%82.pdf\r\n"
            + "Content-Transfer-Encoding: base64\r\n\r\n"
            + attachment
            + "\r\n--b--\r\n"
        ).encode()
    return "\r\n".join(head).encode() + b"\r\n\r\n" + payload


def corpus_share() -> tuple[int, int, list[str]]:
    expected: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
    company = Company.of(["crm@example.test"], ["firma.ru"])
    exact, wrong = 0, []
    for name, want in sorted(expected.items()):
        parsed = parse_message((CORPUS / name).read_bytes())
        decision = decide(parsed, company)
        got = {
            "subject": parsed.subject,
            "from": parsed.sender[0].email if parsed.sender else None,
            "from_name": parsed.sender[0].name if parsed.sender else "",
            "body": parsed.body,
            "attachments": [a.name for a in parsed.attachments],
            "decoded": parsed.decoded,
            "message_id": parsed.message_id,
            "skipped": decision.skipped,
            "clients": [c.email.lower() for c in decision.clients],
        }
        want = {"from_name": "", "attachments": [], "decoded": True, "skipped": None, "clients": [], **want}
        want["clients"] = [c.lower() for c in want["clients"]]
        bad = [k for k in got if k in want and got[k] != want[k]]
        if "date" in want and parsed.date is not None:
            bad.append("date")
        if bad:
            wrong.append(f"{name}: {', '.join(bad)}")
        else:
            exact += 1
    return exact, len(expected), wrong


def baseline(port: int) -> float:
    from imapclient import IMAPClient

    conn = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=60)
    conn.login(USER, PASSWORD)
    conn.select_folder("INBOX", readonly=True)
    uids = conn.search(["ALL"])
    started = time.perf_counter()
    for i in range(0, len(uids), 200):
        conn.fetch(uids[i : i + 200], ["BODY.PEEK[]"])
    elapsed = time.perf_counter() - started
    conn.logout()
    return len(uids) / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args(argv)
    configure_logging("warning", "console")

    exact, total, wrong = corpus_share()
    print(f"corpus decoded exactly: {exact}/{total} = {exact / total:.1%}")
    for line in wrong:
        print(f"  not exact: {line}")

    with tempfile.TemporaryDirectory(prefix="bench-email-") as tmp, running_dovecot(Path(tmp)) as dovecot:
        started = time.perf_counter()
        for i in range(0, args.messages, 500):
            dovecot.append_offline("INBOX", *[make_message(j) for j in range(i, min(i + 500, args.messages))])
        print(f"delivered {args.messages} messages to the Maildir in {time.perf_counter() - started:.1f} s")
        raw_rate = baseline(dovecot.port)  # also lets Dovecot build its index, so both runs read a warm mailbox
        print(f"baseline: bare IMAPClient UID FETCH BODY.PEEK[], 200 a command: {raw_rate:,.0f} messages/s")

        settings = load_settings(
            database_url=f"sqlite:///{tmp}/hub.db", bus_url="memory://", data_dir=Path(tmp), log_level="warning"
        )
        import os

        os.environ.update(
            {
                "HUB_EMAIL__IMAP__HOST": "127.0.0.1",
                "HUB_EMAIL__IMAP__PORT": str(dovecot.port),
                "HUB_EMAIL__IMAP__USERNAME": USER,
                "HUB_EMAIL__IMAP__PASSWORD": PASSWORD,
                "HUB_EMAIL__IMAP__SECURITY": "none",
                "HUB_EMAIL__IMAP__FOLDERS": '["INBOX"]',
                "HUB_EMAIL__COMPANY_DOMAINS": '["firma.ru"]',
            }
        )
        hub = Hub(settings, PluginHost(autoload=False, extra=[("email", plugin)]))
        hub.migrate()
        hub.prepare()
        account = accounts(hub).get()
        rss_before = rss_mb()
        with PeakRSS() as peak:
            conn = account.connect()
            started, cpu_started = time.perf_counter(), time.process_time()
            report = MailboxSync(account).sync(conn)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            conn.close()
        rate = report.messages / elapsed
        folder = report.folders["INBOX"]
        print(
            f"hub email sync: {report.messages} messages in {elapsed:.1f} s = {rate:,.0f} messages/s "
            f"({rate / raw_rate:.2f} of the bare fetch); stored {folder.stored}, already stored {folder.already_stored}"
        )
        print(
            f"CPU of the hub process: {cpu:.1f} s = {1000 * cpu / report.messages:.2f} ms a message "
            f"({report.messages / cpu:,.0f} messages per CPU-second; wall/CPU {elapsed / cpu:.2f}: the machine's load)"
        )
        print(f"peak RSS during the sync: {peak.peak:.1f} MB (before it: {rss_before:.1f} MB)")
        clients = len(list(hub.iter_clients()))
        print(f"clients: {clients}; timeline entries: {sum(1 for _ in hub.iter_items(channel='email'))}")
        hub.stop(grace=1)


if __name__ == "__main__":
    main()
