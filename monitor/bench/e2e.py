"""End to end through Kafka: producer process -> embedded broker -> one worker -> events.

Per step: a fresh audio topic and consumer group; the worker (``e2e_worker``: the real service
worker) starts and is assigned its partitions; a separate producer process (``e2e_producer``)
publishes N real-time streams for S seconds. From the worker's record of when each alerting
window was scored, and the capture clock (sample 0 = the epoch, DESIGN §4.3):
- window delay = scored - capture time of the window's last sample;
- chunk latency (the issue's arrival-to-score) = when the first window holding the chunk's last
  sample was scored - when the worker's poll returned the chunk; it includes the wait for the
  rest of the window's hop to arrive, hence the bound of hop + 200 ms;
- the same from the chunk's capture end (adds the producer, the broker and the fetch wait, all
  on this box's two cores), reported as ``capture_p50_ms`` / ``capture_p99_ms``;
- keeps up = every expected window scored, window delay not growing over the run, p99 chunk
  latency within hop + 200 ms both from arrival and from capture (a worker that fetches late
  leaves audio in the broker, where arrival-based latency cannot see it), and the producer on
  time.
CPU (utime + stime) and RSS of the worker come from ``/proc``, sampled over the steady part.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from workers.model import AlertingWindow

log = logging.getLogger(__name__)

WARM_S = 3.0  # seconds of each step not counted (group join, first batches)
#: Service settings of the worker under test (``service:`` in its config). A 50 ms micro-batch
#: wait instead of 200 ms kept p99 within hop + 200 ms for ~25 % more worker CPU per stream;
#: 20 ms instead of 50 ms then took 800 streams from p99 770 ms to 677 ms (kept up) at no more
#: worker CPU (0.72 vs 0.77 cores; single steps, same minute, quiet box).
E2E_SERVICE = {"max_wait_ms": 20}


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


class Harness:
    def __init__(self, model_dir: Path, work: Path, *, threads: int, partitions: int = 4,
                 service: dict | None = None) -> None:
        from monitor.kafka.broker import Broker  # noqa: PLC0415

        self.model_dir, self.work, self.threads, self.partitions = model_dir, work, threads, partitions
        self.service = service or {}
        work.mkdir(parents=True, exist_ok=True)
        self.broker = Broker(log_file=work / "tansu.log").start()

    def close(self) -> None:
        self.broker.stop()

    def _config(self, folder: Path, topic: str, health: dict | None = None) -> Path:
        import yaml  # noqa: PLC0415

        cfg = {"kafka": {"bootstrap": self.broker.bootstrap, "group_id": f"bench-{uuid.uuid4().hex[:8]}",
                         "audio_topic": topic, "sensor_topic": "", "events_topic": f"{topic}-events",
                         "dead_letter_topic": f"{topic}-dlq", "auto_offset_reset": "earliest",
                         "session_timeout_ms": 6000, "heartbeat_interval_ms": 2000},
               "models": [{"streams": "*", "model": str(self.model_dir)}],
               "health": {"port": 0, **(health or {})}, "sinks": {"kafka": True}}
        cfg["service"] = {**self.service, "torch_threads": self.threads}
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def step(self, streams: int, seconds: float, *, produce_first_s: float = 0.0, health: dict | None = None,
             on_ready: Callable[[Path], Callable[[], None] | None] | None = None) -> dict[str, Any]:
        """One run at ``streams`` real-time streams for ``seconds``; see the module docstring.

        ``health``: the worker's ``health:`` settings (default: no HTTP server). ``on_ready``:
        called with the step's config file once the worker holds its partitions, before the
        producer starts (e.g. to open the web view on it); what it returns is called when the
        producer is done, before the worker stops (``benchmarks/ui_overhead.py``)."""
        from monitor.kafka.broker import create_topics  # noqa: PLC0415

        folder = self.work / f"step-{streams}-{uuid.uuid4().hex[:6]}"
        folder.mkdir(parents=True)
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        create_topics(self.broker.bootstrap, {topic: self.partitions, f"{topic}-events": 1, f"{topic}-dlq": 1})
        cfg = self._config(folder, topic, health)
        prod_cmd = [sys.executable, "-m", "monitor.bench.e2e_producer", "--bootstrap", self.broker.bootstrap,
                    "--topic", topic, "--streams", str(streams), "--seconds", str(seconds)]
        producer = None
        done: Callable[[], None] | None = None
        if produce_first_s:  # audio already waiting: the cold start includes scoring it
            producer = subprocess.Popen(prod_cmd, stdout=subprocess.PIPE, text=True, env=_env(),
                                        stderr=open(folder / "producer.log", "w"))
            time.sleep(produce_first_s)
        t0 = time.time()
        worker = subprocess.Popen([sys.executable, "-m", "monitor.bench.e2e_worker", str(cfg), str(folder),
                                   repr(t0), "0"], env=_env(),
                                  stdout=subprocess.DEVNULL, stderr=open(folder / "worker.log", "w"))
        try:
            self._wait_ready(worker, folder)
            if on_ready is not None:
                done = on_ready(cfg)
            if producer is None:
                producer = subprocess.Popen(prod_cmd, stdout=subprocess.PIPE, text=True, env=_env(),
                                            stderr=open(folder / "producer.log", "w"))
            samples = self._watch(worker, producer, seconds)
            out, _ = producer.communicate(timeout=60)
            time.sleep(1.5)  # let the last windows be scored
        finally:
            if producer is not None and producer.poll() is None:
                producer.kill()
            if done is not None:
                done()
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
            self._drop_topics([topic, f"{topic}-events", f"{topic}-dlq"])
        lines = [json.loads(x) for x in out.strip().splitlines() if x.startswith("{")]
        prod = lines[-1] if lines else {}
        return self._analyse(folder, streams, seconds, prod, samples)

    def _drop_topics(self, topics: list[str]) -> None:
        """Free the step's audio in the in-memory broker (a 1,600-stream step holds ~1 GB)."""
        from monitor.kafka.broker import delete_topics  # noqa: PLC0415

        try:
            delete_topics(self.broker.bootstrap, topics)
        except Exception as exc:  # noqa: BLE001 - a broker without DeleteTopics: keep going
            log.warning("could not delete the step's topics: %s", exc)

    def _wait_ready(self, worker: subprocess.Popen, folder: Path, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not (folder / "ready").exists():
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited ({worker.returncode}): "
                                   f"{(folder / 'worker.log').read_text()[-800:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("worker not assigned partitions within 60 s")
            time.sleep(0.05)

    def _watch(self, worker: subprocess.Popen, producer: subprocess.Popen, seconds: float) -> list[tuple]:
        """(wall, worker cpu s, worker rss MB, broker cpu s, producer cpu s) every 0.5 s."""
        samples = []
        end = time.monotonic() + seconds + 30
        while producer.poll() is None and time.monotonic() < end:
            try:
                samples.append((time.time(), proc_cpu_s(worker.pid), proc_rss_mb(worker.pid),
                                proc_cpu_s(self.broker.proc.pid), proc_cpu_s(producer.pid)))
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.5)
        return samples

    def _analyse(self, folder: Path, streams: int, seconds: float, prod: dict, samples: list[tuple]) -> dict:
        res = json.loads((folder / "result.json").read_text()) if (folder / "result.json").exists() else {}
        row: dict[str, Any] = {"streams": streams, "seconds": seconds, "producer": prod,
                               "worker_marks": res.get("marks"), "torch_threads": res.get("torch_threads")}
        if not res or not prod.get("start_ns"):
            tails = [f"{name}: {_tail(folder / name)}" for name in ("worker.log", "producer.log")
                     if _tail(folder / name)]
            row.update(kept_up=False, reason="worker or producer did not finish" +
                       (f" ({'; '.join(tails)})" if tails else ""))
            return row
        data = np.load(folder / "windows.npz")
        sr, hop = res["sample_rate"], res["hop_s"]
        if len(samples) >= 2:  # the worker's cost per window, whether it kept up or not
            w0, w1 = samples[0][0], samples[-1][0]
            n = int(((data["scored_at"] >= w0) & (data["scored_at"] <= w1)).sum())
            if n:
                row["worker_cpu_ms_per_window"] = 1000 * (samples[-1][1] - samples[0][1]) / n
        start = prod["start_ns"] / 1e9
        end_t = data["end_sample"] / sr
        delay = data["scored_at"] - end_t
        keep = (end_t >= start + WARM_S) & (end_t <= start + seconds)
        d, e = delay[keep], end_t[keep]
        span = seconds - WARM_S
        expected = streams * int(span / hop)
        row["windows_scored"], row["windows_expected"] = int(keep.sum()), expected
        if not len(d):
            row.update(kept_up=False, reason="no window scored in the steady part")
            return row
        order = np.argsort(e)
        thirds = np.array_split(d[order], 3)
        growth = float(np.median(thirds[-1]) - np.median(thirds[0])) if len(d) >= 3 else 0.0
        lat, cap = chunk_latencies(data, sr=sr, hop_s=hop, length_s=res.get("length_s", AlertingWindow().length_s),
                                   start=start + WARM_S, end=start + seconds)
        row.update({"window_delay_p50_ms": 1000 * float(np.percentile(d, 50)),
                    "window_delay_p99_ms": 1000 * float(np.percentile(d, 99)),
                    "delay_growth_ms": 1000 * growth, "bound_ms": 1000 * (hop + 0.2)})
        if not len(lat):
            row.update(kept_up=False, reason="no chunk of the steady part reached a scored window")
            return row
        row.update({"p50_ms": 1000 * float(np.percentile(lat, 50)), "p99_ms": 1000 * float(np.percentile(lat, 99)),
                    "capture_p50_ms": 1000 * float(np.percentile(cap, 50)),
                    "capture_p99_ms": 1000 * float(np.percentile(cap, 99)), "chunks_measured": int(len(lat))})
        if "arrival_to_scored" in data.files and len(data["arrival_to_scored"]):
            a2s = data["arrival_to_scored"]
            a2s = a2s[len(a2s) // 4:]  # past the start-up
            row["arrival_to_frames_scored_p50_ms"] = 1000 * float(np.percentile(a2s, 50))
            row["arrival_to_frames_scored_p99_ms"] = 1000 * float(np.percentile(a2s, 99))
        steady = [s for s in samples if start + WARM_S <= s[0] <= start + seconds]
        if len(steady) >= 2:
            wall = steady[-1][0] - steady[0][0]
            row["worker_cpu"] = (steady[-1][1] - steady[0][1]) / wall
            row["broker_cpu"] = (steady[-1][3] - steady[0][3]) / wall
            row["producer_cpu"] = (steady[-1][4] - steady[0][4]) / wall
        row["worker_rss_mb"] = max((s[2] for s in samples), default=None)
        producer_ok = prod.get("lateness_max_s", 1e9) < 0.5
        reasons = []
        if row["windows_scored"] < 0.98 * expected:
            reasons.append(f"scored {row['windows_scored']} of {expected} windows")
        if growth > 0.25:
            reasons.append(f"delay grew {1000 * growth:.0f} ms")
        if row["p99_ms"] > row["bound_ms"]:
            reasons.append(f"p99 {row['p99_ms']:.0f} ms > {row['bound_ms']:.0f} ms")
        # a worker that fetches late leaves audio waiting in the broker, which arrival-based
        # latency cannot see: the same bound from the capture (producer and broker included)
        if row["capture_p99_ms"] > row["bound_ms"]:
            reasons.append(f"p99 from capture {row['capture_p99_ms']:.0f} ms > {row['bound_ms']:.0f} ms")
        if not producer_ok:
            reasons.append(f"producer {prod.get('lateness_max_s', float('nan')):.2f} s late")
        row["kept_up"] = not reasons
        row["producer_on_time"] = producer_ok
        row["reason"] = "; ".join(reasons)
        return row


def chunk_latencies(data, *, sr: int, hop_s: float, length_s: float, start: float,
                    end: float) -> tuple[np.ndarray, np.ndarray]:
    """Per chunk captured in ``[start, end]``: (arrival-to-score, capture-to-score) seconds,
    "score" being when the first window holding the chunk's last sample was scored."""
    hop, length = round(hop_s * sr), round(length_s * sr)
    b = data["chunk_end"]
    keep = (b / sr >= start) & (b / sr <= end)
    s, b, arrival = data["chunk_stream"][keep], b[keep], data["chunk_arrival"][keep]
    first_end = np.maximum(0, -(-(b - length) // hop)) * hop + length  # first window end >= b
    wkey = data["window_stream"] * (1 << 40) + data["end_sample"]
    order = np.argsort(wkey)
    wkey, wscored = wkey[order], data["scored_at"][order]
    ckey = s * (1 << 40) + first_end
    i = np.minimum(np.searchsorted(wkey, ckey), len(wkey) - 1)
    found = wkey[i] == ckey if len(wkey) else np.zeros(len(ckey), bool)
    scored = wscored[i[found]]
    return scored - arrival[found], scored - b[found] / sr


def _tail(path: Path) -> str:
    """The last non-blank line of a log file (for a failed step's reason)."""
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][-200:] if lines else ""


def e2e_skipped(reason: str, *, failed: bool = False) -> dict[str, Any]:
    """Null e2e figures with the reason; ``failed``: the run crashed (a defect, not a limit)."""
    return {"e2e_streams": None, "e2e_streams_per_worker_core": None, "p99_latency_ms": None,
            "p50_latency_ms": None, "rss_mb_per_1000": None, "e2e_skipped_reason": reason,
            "e2e_failed": failed}


def end_to_end(model_dir: Path, *, opts, ceiling: float) -> dict[str, Any]:
    """The e2e figures (or null figures with the reason they could not be measured)."""
    try:
        from monitor.kafka.broker import Broker  # noqa: F401, PLC0415
        from monitor.service.worker import Worker  # noqa: F401, PLC0415
        from monitor.kafka.producer import publish_audio  # noqa: F401, PLC0415
    except ImportError as exc:
        return e2e_skipped(f"the Kafka service is not available: {exc}")
    import tempfile  # noqa: PLC0415

    seconds = 8.0 if opts.quick else 20.0
    threads = opts.extra.get("e2e_threads", 1)
    service = {**E2E_SERVICE, **opts.extra.get("e2e_service", {})}
    with tempfile.TemporaryDirectory(prefix="monitor-e2e-") as tmp:
        h = Harness(Path(model_dir), Path(tmp), threads=threads, service=service)
        try:
            return _search(h, opts=opts, seconds=seconds, ceiling=ceiling)
        except Exception as exc:  # noqa: BLE001 - Kafka client errors too: report, never crash the bench
            log.error("end-to-end part failed: %s", exc)
            return e2e_skipped(f"end-to-end run failed: {type(exc).__name__}: {str(exc)[:300]}", failed=True)
        finally:
            h.close()


def _search(h: Harness, *, opts, seconds: float, ceiling: float) -> dict[str, Any]:
    from monitor.kafka.consumer import resolve_client  # noqa: PLC0415

    steps: list[dict] = []

    def run(n: int, s: float = seconds) -> dict:
        r = h.step(n, s)
        steps.append(r)
        log.info("e2e step", extra={k: r.get(k) for k in ("streams", "kept_up", "reason", "p99_ms", "worker_cpu")})
        return r

    cold = h.step(10, 6.0, produce_first_s=2.0)
    if opts.quick:
        plan = [100, 400]
        for n in plan:
            run(n)
    else:
        n, lo, hi = 100, 0, None
        while hi is None and n <= 20000:  # double until a step falls behind, then bisect
            if run(n)["kept_up"]:
                lo = n
            else:
                hi = n
            n *= 2
        for _ in range(2 if hi else 0):
            mid = (lo + hi) // 2
            if mid in (lo, hi):
                break
            if run(mid)["kept_up"]:
                lo = mid
            else:
                hi = mid
    ok = [s for s in steps if s["kept_up"]]
    sustained = max((s["streams"] for s in ok), default=0)
    best = max(ok, key=lambda s: s["streams"]) if ok else None
    if sustained and not opts.quick:
        half = run(max(1, sustained // 2))
    else:
        cands = [s for s in steps if s.get("p99_ms") is not None]
        half = min(cands, key=lambda s: abs(s["streams"] - sustained / 2)) if cands else None
    per_core = sustained / best["worker_cpu"] if best and best.get("worker_cpu") else None
    rss_steps = [s for s in steps if s.get("worker_rss_mb")]
    rss = _rss_per_1000(rss_steps)
    return {
        "e2e_streams": sustained if ok else None,
        "e2e_streams_per_worker_core": per_core,
        "p50_latency_ms": half.get("p50_ms") if half else None,
        "p99_latency_ms": half.get("p99_ms") if half else None,
        "rss_mb_per_1000": rss,
        "rss_fit": dict(zip(("fixed_mb", "mb_per_stream"), _rss_line(rss_steps))) if rss_steps else None,
        "cold_start_kafka_s": (cold.get("worker_marks") or {}).get("first_window"),
        "e2e": {"steps": steps, "cold_start_step": cold, "latency_step_streams": half["streams"] if half else None,
                "fraction_of_ceiling": sustained / ceiling if ceiling and sustained else None,
                "worker_torch_threads": h.threads, "worker_service_config": h.service,
                "worker_kafka_client": resolve_client("auto"),
                "definition": __doc__.strip().splitlines()[0]},
        **({} if ok else {"e2e_skipped_reason": "no step kept up: " + "; ".join(s["reason"] for s in steps)}),
    }


def _rss_per_1000(steps: list[dict]) -> float | None:
    """Worker RSS when carrying 1,000 streams: measured at a 1,000-stream step, else the line
    fixed + per-stream through the steps' RSS read at 1,000 (never a step's RSS scaled by
    1000 / streams: a fixed ~250 MB of it does not scale)."""
    if not steps:
        return None
    exact = [s for s in steps if s["streams"] == 1000]
    if exact:
        return exact[0]["worker_rss_mb"]
    fixed, per_stream = _rss_line(steps)
    return float(fixed + 1000 * per_stream) if per_stream is not None else float(fixed)


def _rss_line(steps: list[dict]) -> tuple[float, float | None]:
    """(fixed MB, MB per stream) by least squares over the steps (one step: its RSS, None)."""
    if len({s["streams"] for s in steps}) < 2:
        return steps[0]["worker_rss_mb"], None
    x = np.array([s["streams"] for s in steps], dtype=float)
    y = np.array([s["worker_rss_mb"] for s in steps], dtype=float)
    slope, base = np.polyfit(x, y, 1)
    return float(base), float(max(slope, 0.0))