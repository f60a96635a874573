"""``hub demo`` on a fresh install: sandboxes, hub and traffic start, the console logs in, Ctrl-C stops it all."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.testing import free_port
from tests.conftest import wait_for

HUB = str(Path(sys.executable).parent / "hub")


@pytest.mark.slow
def test_hub_demo_serves_the_console_with_live_traffic_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [HUB, "demo", "--port", str(port), "--every", "0.3", "--seed", "1", "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HUB_LOG_LEVEL": "warning"},
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while not any("log in as admin" in line for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/console/" in text
        password = re.search(r"log in as admin / (\S+)", text).group(1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            form = http.get("/console/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
            answer = http.post("/console/login", data={"username": "admin", "password": password, "csrf": csrf})
            assert answer.status_code == 303
            clients = http.get("/console/clients").text
            assert "Иванов Иван Петрович" in clients and "Григорьев Степан" in clients  # CRM and the Excel base
            found = http.get("/console/clients", params={"q": "ivanov@romashka.ru"}, follow_redirects=True)
            card_url = found.url.path if re.search(r"/clients/\d+$", found.url.path) else None
            card_url = card_url or re.search(r'href="(/console/clients/\d+)"', found.text).group(1)
            emails = http.get(card_url, params={"channel": "email"}).text
            assert "Запрос коммерческого предложения" in emails and "Re: Запрос коммерческого предложения" in emails
            thread = re.search(r'href="\?thread=([^"]+)"', emails).group(1)
            letters = http.get(card_url + "?thread=" + thread).text
            assert letters.index("Просим выслать КП") < letters.index("КП во вложении") < letters.index("согласовываем")
            report = wait_for(lambda: "Олег Смирнов" in (r := http.get("/console/reports/calls").text) and r, 60)
            assert "<svg" in report
            # the Excel base replicated to the Bitrix24 sandbox takes ids there that no demo contact claims
            assert "same bitrix24 contact" not in http.get("/console/merges").text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/console/login", timeout=2)
