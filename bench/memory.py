"""P7: memory of a running hub (ingest, relay, two sinks) over 1,000,000 observations.

    python bench/memory.py            # 1,000,000 observations (about a quarter of an hour on 2 cores)
    python bench/memory.py -n 200000  # shorter

Prints RSS every 5 % of the run, the peak, and the growth over the second half (target: <= 200 MB, flat).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import TwoSinks, observations

from hub.core.hub import Hub
from hub.core.logging import configure_logging
from hub.core.plugins import PluginHost
from hub.core.settings import load_settings


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    configure_logging("warning", "json")
    tmp = Path(tempfile.mkdtemp())
    plugin = TwoSinks()
    hub = Hub(load_settings(data_dir=tmp, log_level="warning"), PluginHost(autoload=False, extra=[("bench", plugin)]))
    hub.migrate()
    hub.start("all")
    step = max(args.n // 20, args.batch)
    samples: list[tuple[int, float]] = [(0, rss_mb())]
    started = time.perf_counter()
    done = 0
    while done < args.n:
        chunk = min(step, args.n - done)
        for i in range(0, chunk, args.batch):  # the feeder holds one batch at a time
            hub.ingest_many(observations(min(args.batch, chunk - i), offset=done + i))
        done += chunk
        samples.append((done, rss_mb()))
        print(
            f"{done:>9,} observations  RSS {samples[-1][1]:7.1f} MB  "
            f"{done / (time.perf_counter() - started):7,.0f}/s  outbox lag {hub.relay.lag():,}",
            flush=True,
        )
    hub.wait_idle(timeout=600)
    samples.append((done, rss_mb()))
    hub.stop(grace=30)
    half = [mb for n, mb in samples if n >= args.n // 2]
    peak = max(mb for _, mb in samples)
    print(
        f"\nP7: peak RSS {peak:.1f} MB (target <= 200 MB: {'met' if peak <= 200 else 'MISSED'}); "
        f"second half from {half[0]:.1f} to {half[-1]:.1f} MB ({half[-1] - half[0]:+.1f} MB)"
    )
    print(f"    database {sum(f.stat().st_size for f in tmp.iterdir()) / 1e6:,.0f} MB on disk at {tmp}")


if __name__ == "__main__":
    main()
