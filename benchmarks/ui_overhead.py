"""The web view's cost to the service, and whether its overview stays usable, at N streams.

Issue 21: "With 1,000 streams the overview stays usable (paged or filtered) and the service's
figures in ``monitor bench`` do not drop by more than noise with the view open."

One run, one broker, one model; ``monitor bench``'s end-to-end step (``monitor.bench.e2e``:
the real worker process, a separate real-time producer process, Tansu) at ``--streams``
streams, repeated in three modes, interleaved (A B C C B A ...) so that load from elsewhere on
the shared box hits every mode alike:

- ``bench``: the worker exactly as ``monitor bench`` runs it (no HTTP server);
- ``closed``: the worker as the view needs it: its health/metrics server on and
  ``health.stream_metrics`` = the stream count (the README's advice for 1,000 streams), nobody
  polling;
- ``open``: the same worker with the view open on it: a ``monitor ui --config`` process (reads
  the events topic, polls the worker's ``/metrics`` every second) and headless Chromium showing
  the overview (server-sent events, ``/api/overview`` per change), both on this box.
  Chromium is started once, before the first step, and waits on ``about:blank`` between the
  ``open`` steps, so its start-up is no step's load and its idle cost is in every mode alike.

Per step: the bench's figures (kept up, worker CPU in cores, streams per worker core, chunk
latency p50/p99 from arrival and from capture, windows scored, RSS; and the worker's CPU per
window scored, the one that a box too loaded to keep up still measures), the CPU of the view's
processes, and for ``open`` what the engineer gets: how long until the overview counts every
stream, ``/api/overview`` response times (first page by severity, a filter, the last page)
sampled through the step, and in the browser the time from typing a filter to the filtered rows.
The ratios (open / closed, closed / bench) are of the medians; the spread of one mode's repeats
is the noise they are judged against. First, apart from the box's load: the CPU time one poll
of the view costs a worker (rendering its /metrics with that many stream series, which holds the
worker's GIL while it runs), at one poll a second the share of a core the view takes from it.

    nice -n 10 .venv/bin/python benchmarks/ui_overhead.py --streams 1000,200 --rounds 2 \\
        --out benchmarks/results/ui/ui-overhead.json
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.bench.e2e import E2E_SERVICE, Harness, _env, proc_cpu_s  # noqa: E402
from monitor.bench.workload import load_average, machine_info, train_bench_model  # noqa: E402
from monitor.kafka.broker import free_port  # noqa: E402

MODES = ("bench", "closed", "open")
FIGURES = ("worker_cpu_ms_per_window", "worker_cpu", "streams_per_worker_core", "p50_ms", "p99_ms", "capture_p99_ms",
           "window_delay_p99_ms", "windows_scored_fraction", "worker_rss_mb")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and all its descendants (Chromium's renderer, GPU, ... processes)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += proc_cpu_s(p)
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(p, []))
    return total


class OpenView:
    """``monitor ui`` on the step's config, Chromium on its overview, and a prober of the API."""

    def __init__(self, cfg: Path, streams: int, *, browser=None) -> None:
        self.streams, self.t0 = streams, time.monotonic()
        self.needle = f"{streams - 1:05d}"  # the last stream's id ends so (monitor.bench.e2e_producer)
        self.ui = subprocess.Popen([sys.executable, "-m", "monitor", "ui", "--config", str(cfg), "--port", "0"],
                                   cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True,
                                   stderr=open(cfg.parent / "ui.log", "w"))
        line = self.ui.stdout.readline()  # "web view on http://127.0.0.1:PORT/ (Ctrl-C to stop)"
        if "web view on " not in line:
            raise RuntimeError(f"monitor ui did not start: {line!r} {(cfg.parent / 'ui.log').read_text()[-500:]}")
        self.url = line.split("web view on ", 1)[1].split()[0]
        self.ui_cpu0 = proc_cpu_s(self.ui.pid)
        self.browser, self.result = browser, {"url": self.url}
        if browser is not None:
            browser.get(self.url)
            self.browser_cpu0 = tree_cpu_s(browser.driver.pid)
        self.samples: list[tuple[str, float, int]] = []  # (what, seconds, total streams)
        self.first_seen_s: float | None = None
        self.all_seen_s: float | None = None
        self.stopping = threading.Event()
        self.prober = threading.Thread(target=self._probe, daemon=True)
        self.prober.start()

    def _get(self, query: str) -> tuple[float, dict]:
        t = time.perf_counter()
        with urllib.request.urlopen(self.url + "api/overview?" + query, timeout=10) as r:
            data = json.loads(r.read())
        return time.perf_counter() - t, data

    def _probe(self) -> None:
        """Every second, what an engineer's page asks for: the first page by severity, a
        filtered page, the last page."""
        queries = {"first": "page=0&per_page=50&sort=severity", "filter": f"q={self.needle}&per_page=50",
                   "last": "page=100000&per_page=50&sort=name"}
        while not self.stopping.wait(1.0):
            for what, q in queries.items():
                try:
                    s, data = self._get(q)
                except OSError:
                    continue
                self.samples.append((what, s, data["total"]))
                if what == "first" and self.first_seen_s is None and data["total"]:
                    self.first_seen_s = time.monotonic() - self.t0
                if what == "first" and self.all_seen_s is None and data["total"] >= self.streams:
                    self.all_seen_s = time.monotonic() - self.t0

    def _browser_checks(self) -> dict:
        """In the page: the overview's count, its rows, and a filter typed into it."""
        b = self.browser
        out = {"pageinfo": b.run("return document.getElementById('pageinfo').textContent"),
               "rows": b.run("return document.querySelectorAll('#streams tbody tr').length"),
               "live": b.run("return document.getElementById('live').textContent")}
        out["filter_ms"] = b.run_async("""
            const needle = arguments[0], done = arguments[arguments.length - 1];
            const f = document.getElementById('filter'), t0 = performance.now();
            f.value = needle; f.dispatchEvent(new Event('input'));
            const check = () => {
              const rows = [...document.querySelectorAll('#streams tbody tr')].map(r => r.dataset.stream);
              if (rows.length === 1 && rows[0].endsWith(needle)) done(performance.now() - t0);
              else if (performance.now() - t0 > 20000) done(-1); else setTimeout(check, 5);
            };
            check();""", self.needle)
        out["filtered_pageinfo"] = b.run("return document.getElementById('pageinfo').textContent")
        return out

    def close(self) -> None:
        wall = time.monotonic() - self.t0
        self.stopping.set()
        self.prober.join(15)
        r = self.result
        if self.browser is not None:
            try:
                r["browser_checks"] = self._browser_checks()
            except Exception as exc:  # noqa: BLE001 - report, keep the bench's figures
                r["browser_checks"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            r["browser_cpu"] = (tree_cpu_s(self.browser.driver.pid) - self.browser_cpu0) / wall
            self.browser.get("about:blank")
        r["ui_cpu"] = (proc_cpu_s(self.ui.pid) - self.ui_cpu0) / wall
        self.ui.terminate()
        try:
            self.ui.wait(10)
        except subprocess.TimeoutExpired:
            self.ui.kill()
        r["first_stream_listed_after_s"] = self.first_seen_s
        r["all_streams_listed_after_s"] = self.all_seen_s
        for what in ("first", "filter", "last"):
            xs = sorted(s for w, s, _ in self.samples if w == what)
            if xs:
                r[f"api_{what}_ms"] = {"n": len(xs), "p50": 1000 * xs[len(xs) // 2],
                                       "p99": 1000 * xs[min(len(xs) - 1, int(0.99 * len(xs)))],
                                       "max": 1000 * xs[-1]}
        r["streams_listed_max"] = max((n for w, _, n in self.samples if w == "first"), default=0)


def scrape_cost(streams: int, *, repeats: int = 20) -> dict:
    """What one poll of the view costs the worker, apart from the box's load: the CPU time of
    rendering a worker's /metrics with ``streams`` per-stream series (the health server's
    ``generate_latest``, which holds the GIL while it runs), fetched over HTTP from the real
    health server as the view's poller does, once a second."""
    from monitor.service.health import HealthServer, Metrics  # noqa: PLC0415
    from prometheus_client import generate_latest  # noqa: PLC0415

    m = Metrics(stream_limit=streams)
    for i in range(streams):
        m.window_scored(f"bench-{i:05d}", "ae-v1", float(i), 30.0)
    m.streams.set(streams)
    text = generate_latest(m.registry)
    t = time.process_time()
    for _ in range(repeats):
        generate_latest(m.registry)
    render_ms = 1000 * (time.process_time() - t) / repeats
    server = HealthServer(host="127.0.0.1", port=0, metrics=m)
    try:
        walls = []
        for _ in range(repeats):
            w = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
                r.read()
            walls.append(time.perf_counter() - w)
    finally:
        server.close()
    walls.sort()
    return {"streams": streams, "metrics_bytes": len(text), "render_cpu_ms": render_ms,
            "fetch_wall_ms_p50": 1000 * walls[len(walls) // 2],
            "worker_core_share_at_1_poll_per_s": render_ms / 1000.0}


def summarise(step: dict) -> dict:
    out = {k: step.get(k) for k in ("streams", "kept_up", "reason", "worker_cpu", "worker_cpu_ms_per_window",
                                    "p50_ms", "p99_ms",
                                    "capture_p99_ms", "window_delay_p99_ms", "worker_rss_mb",
                                    "windows_scored", "windows_expected", "broker_cpu", "producer_cpu")}
    if step.get("worker_cpu"):
        out["streams_per_worker_core"] = step["streams"] / step["worker_cpu"]
    if step.get("windows_expected"):
        out["windows_scored_fraction"] = step["windows_scored"] / step["windows_expected"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", default="1000", help="stream count, or several (1000,200): each is "
                    "measured in every mode, interleaved, in this one run")
    ap.add_argument("--seconds", type=float, default=20.0, help="audio seconds per step (monitor bench: 20)")
    ap.add_argument("--rounds", type=int, default=2, help="steps per mode")
    ap.add_argument("--model", help="a trained model (default: train monitor bench's small one)")
    ap.add_argument("--no-browser", action="store_true", help="the view without Chromium")
    ap.add_argument("--out", required=True, help="result JSON")
    args = ap.parse_args()
    stopping = []

    def stop(signum, _frame):  # unwind (broker, worker, browser stop); never start another step
        stopping.append(signum)
        raise SystemExit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)

    counts = [int(x) for x in str(args.streams).split(",") if x.strip()]
    report = {"what": __doc__.strip().splitlines()[0], "streams": counts, "seconds": args.seconds,
              "machine": machine_info(), "load_before": load_average(), "nice": os.nice(0),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "worker_service_config": E2E_SERVICE, "steps": []}
    t_start = time.perf_counter()
    report["scrape"] = [scrape_cost(n) for n in counts]
    print(json.dumps(report["scrape"]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="monitor-ui-bench-") as tmp:
        work = Path(tmp)
        model = Path(args.model) if args.model else train_bench_model(work, epochs=2)
        h = Harness(model, work / "e2e", threads=1, service=E2E_SERVICE)
        browser = None
        if not args.no_browser:  # started once, before the steps: its start-up is no step's load
            from tests.integration.webdriver import Browser, find_browser  # noqa: PLC0415

            found = find_browser()
            if isinstance(found, str):
                report["browser"] = found
            else:
                browser = Browser(*found)
                report["browser"] = found[0]
        try:
            order = []
            for r in range(args.rounds):  # A B C, C B A, ...: a drift in the box's load cancels
                for n in counts:
                    order += [(n, m) for m in (MODES if r % 2 == 0 else tuple(reversed(MODES)))]
            for n, mode in order:
                if stopping:
                    break
                health = None if mode == "bench" else {"port": free_port(), "stream_metrics": n}
                view: dict = {}

                def on_ready(cfg: Path, mode=mode, view=view, n=n):
                    if mode != "open":
                        return None
                    v = OpenView(cfg, n, browser=browser)
                    time.sleep(3.0)  # monitor ui started, the page loaded, its event stream connected

                    def done():
                        v.close()
                        view.update(v.result)
                    return done

                t = time.perf_counter()
                step = h.step(n, args.seconds, health=health, on_ready=on_ready)
                row = {"mode": mode, "load": load_average(), "step_s": round(time.perf_counter() - t, 1),
                       **summarise(step), **({"view": view} if view else {})}
                report["steps"].append(row)
                out.write_text(json.dumps(report, indent=2, default=str) + "\n")  # kept if a later step dies
                print(json.dumps({k: row.get(k) for k in ("streams", "mode", "kept_up", "worker_cpu",
                                                          "worker_cpu_ms_per_window", "p99_ms",
                                                          "capture_p99_ms", "windows_scored_fraction")}),
                      flush=True)
        finally:
            if browser is not None:
                browser.close()
            h.close()
    report["summary"] = {str(n): compare([s for s in report["steps"] if s["streams"] == n]) for n in counts}
    report["load_after"] = load_average()
    report["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report["summary"], indent=2))
    return 0


def compare(steps: list[dict]) -> dict:
    """Per figure and mode: the median and the spread of the repeats; the ratios of medians."""
    out: dict = {"kept_up": {m: [s["kept_up"] for s in steps if s["mode"] == m] for m in MODES}}
    for fig in FIGURES:
        per = {m: [s[fig] for s in steps if s["mode"] == m and s.get(fig) is not None] for m in MODES}
        med = {m: statistics.median(v) for m, v in per.items() if v}
        row = {"values": per, "median": med,
               "spread_within_mode": {m: (max(v) - min(v)) / statistics.median(v) if len(v) > 1 and
                                      statistics.median(v) else None for m, v in per.items()}}
        if med.get("closed") and "open" in med:
            row["open_over_closed"] = med["open"] / med["closed"]
        if med.get("bench") and "closed" in med:
            row["closed_over_bench"] = med["closed"] / med["bench"]
        out[fig] = row
    views = [s["view"] for s in steps if s.get("view")]
    out["view"] = {k: [v.get(k) for v in views] for k in ("ui_cpu", "browser_cpu", "first_stream_listed_after_s",
                                                          "all_streams_listed_after_s",
                                                          "streams_listed_max", "api_first_ms", "api_filter_ms",
                                                          "api_last_ms", "browser_checks")}
    return out


if __name__ == "__main__":
    sys.exit(main())
