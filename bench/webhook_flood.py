"""How long ``/healthz`` stays blocked while the worst webhook bodies the 1 MB limit allows arrive (target: ≤ 50 ms).

A hub with Bitrix24 and amoCRM configured serves in a child process; this process probes ``GET /healthz`` every
5 ms while another thread posts each flood body 5 times: 1 MB of ``a[]=`` pairs unsigned and signed to
``/webhooks/bitrix24``, the same to amoCRM's secret path, and the largest bodies under each pair bound (decoded in
full). Prints the worst and p99 probe latency per body, and the time the old quadratic decoder needed for the
same pairs (measured on 20,000 pairs and scaled, as it takes minutes at full size).

Run: ``python bench/webhook_flood.py``.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import tempfile
import threading
import time

import httpx

from hub.testing import free_port

TOKEN = "bench-application-token-0123456789"
SECRET = "bench-webhook-secret-0123456789"
MEGABYTE = 1_000_000


def serve(data_dir: str, port: int) -> None:
    os.environ.update(
        {
            "HUB_BITRIX24__WEBHOOK_URL": "http://127.0.0.1:9/rest/1/abcdefabcdef/",
            "HUB_BITRIX24__APPLICATION_TOKEN": TOKEN,
            "HUB_AMOCRM__BASE_URL": "http://127.0.0.1:9",
            "HUB_AMOCRM__LONG_LIVED_TOKEN": "bench-long-lived-token",
            "HUB_AMOCRM__WEBHOOK_SECRET": SECRET,
        }
    )
    import uvicorn

    from crm_hub_plugins.amocrm import plugin as amocrm
    from crm_hub_plugins.bitrix24 import plugin as bitrix24
    from hub.core.hub import Hub
    from hub.core.plugins import PluginHost
    from hub.core.settings import load_settings
    from hub.web.app import create_app

    settings = load_settings(database_url=f"sqlite:///{data_dir}/hub.db", bus_url="memory://", data_dir=data_dir)
    hub = Hub(settings, PluginHost(autoload=False, extra=[("bitrix24", bitrix24), ("amocrm", amocrm)]))
    hub.migrate()
    hub.prepare()
    uvicorn.run(create_app(hub), host="127.0.0.1", port=port, log_level="error", access_log=False)


def flood(pairs: int, suffix: str = "") -> bytes:
    return ("&".join(["a[]="] * pairs) + suffix).encode()


def bodies() -> dict[str, tuple[str, bytes]]:
    signed = f"&auth[application_token]={TOKEN}"
    fill = "x" * 480  # a value long enough that 1,999 pairs fill the megabyte
    under_b24 = "&".join(f"data[FIELDS][K{i}]={fill}" for i in range(1_990)) + signed
    under_amo = "&".join(f"contacts[add][{i}][name]={fill[:20]}" for i in range(9_990))
    return {
        "bitrix24, 1 MB a[]= unsigned": ("/webhooks/bitrix24", flood(MEGABYTE // 5)),
        "bitrix24, 1 MB a[]= signed": ("/webhooks/bitrix24", flood(MEGABYTE // 5 - 20, signed)),
        "bitrix24, 1,990 pairs of 480 B signed": ("/webhooks/bitrix24", under_b24.encode()),
        "amocrm, 1 MB a[]= on the secret path": (f"/webhooks/amocrm/{SECRET}", flood(MEGABYTE // 5)),
        "amocrm, 9,990 pairs on the secret path": (f"/webhooks/amocrm/{SECRET}", under_amo.encode()),
    }


def probe(base: str, path: str, body: bytes) -> list[float]:
    latencies: list[float] = []
    done = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=base, timeout=600) as http:
            for _ in range(5):
                http.post(path, content=body, headers={"content-type": "application/x-www-form-urlencoded"})
        done.set()

    sender = threading.Thread(target=send)
    with httpx.Client(base_url=base, timeout=600) as http:
        sender.start()
        while not done.is_set():
            started = time.perf_counter()
            http.get("/healthz")
            latencies.append(time.perf_counter() - started)
            time.sleep(0.005)
    sender.join()
    return latencies


def quadratic_estimate(pairs: int) -> float:
    """Seconds the 0.1.0 decoder (index of ``[]`` counted anew each time) would take for ``pairs`` appended pairs."""
    sample = 20_000
    node: dict[str, str] = {}
    started = time.perf_counter()
    for _ in range(sample):
        node[str(sum(1 for k in node if k.isdigit()))] = ""
    return (time.perf_counter() - started) * (pairs / sample) ** 2


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        child = multiprocessing.get_context("spawn").Process(target=serve, args=(tmp, port), daemon=True)
        child.start()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("the hub did not start") from None
                time.sleep(0.2)
        try:
            print(f"{'body':45} {'bytes':>9} {'answer':>6} {'probes':>6} {'p99 ms':>7} {'max ms':>7}")
            for name, (path, body) in bodies().items():
                status = httpx.post(base + path, content=body, timeout=600).status_code
                latencies = sorted(probe(base, path, body))
                p99, worst = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, latencies[-1] * 1000
                print(f"{name:45} {len(body):>9,} {status:>6} {len(latencies):>6} {p99:>7.1f} {worst:>7.1f}")
            print(f"median probe without load: {statistics.median(probe_idle(base)) * 1000:.1f} ms")
        finally:
            child.terminate()
            child.join(10)
    print(f"0.1.0 decoder on 200,000 a[]= pairs (estimated from 20,000): {quadratic_estimate(200_000):,.0f} s")


def probe_idle(base: str) -> list[float]:
    out = []
    with httpx.Client(base_url=base) as http:
        for _ in range(50):
            started = time.perf_counter()
            http.get("/healthz")
            out.append(time.perf_counter() - started)
    return out


if __name__ == "__main__":
    main()
