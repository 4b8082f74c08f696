"""What checkpointing stream state to the state topic costs the worker, in CPU seconds.

One run per setting of ``service.checkpoint_state`` on the same backlog: N streams of S seconds,
each with a fault from its start, so every stream has an event open the whole time (the
heaviest state: an open event and the explanation terms of its recent windows). The worker
consumes the backlog as fast as it can; the figure is its CPU time (user + system, from
/proc, which a loaded shared box inflates far less than wall time) until every window of every
stream is scored, per stream-second of audio, and the ratio between the two settings in one run.

    .venv/bin/python benchmarks/state_checkpoint_cost.py --streams 300 --seconds 30
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.kafka.broker import Broker, create_topics  # noqa: E402
from monitor.kafka.producer import OutChunk, producer_for, publish_audio  # noqa: E402
from monitor.synth import inject_fault, machine_sound, write_factory  # noqa: E402
from tests.integration.kafka_utils import TOPICS, log_has, start_worker, stop, wait_for, write_config  # noqa: E402

CHUNK = 1600


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def run(model: Path, clips: list, *, streams: int, seconds: float, checkpoint: bool, work: Path) -> dict:
    events, windows, log = work / "events.jsonl", work / "windows.jsonl", work / "w.log"
    n = int(seconds * 16000) // CHUNK
    expect = streams * (int((n * CHUNK - 16000) // 8000) + 1)
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        p = producer_for(broker.bootstrap)
        chunks = (OutChunk(f"cost/m-{s:03d}", clips[s % len(clips)][(k * CHUNK) % len(clips[0]):][:CHUNK], 16000,
                           k * CHUNK) for k in range(n) for s in range(streams))
        publish_audio(p, "machine-audio", chunks, start_ts_ns=0)
        p.close()
        cfg = write_config(work / "cfg.yaml", bootstrap=broker.bootstrap, routes=[("cost/*", model)],
                           events=events, windows=windows, group=f"cost-{uuid.uuid4().hex[:8]}",
                           )
        text = cfg.read_text().replace("commit_interval_ms: 300", "commit_interval_ms: 1000")
        text = text.replace("service:\n", f"service:\n  checkpoint_state: {str(checkpoint).lower()}\n")
        cfg.write_text(text)
        worker = start_worker(cfg, log=log)
        try:
            wait_for(lambda: log_has(log, "partitions assigned"), timeout=120, what="the worker to join")
            cpu0, t0 = _cpu_s(worker.pid), time.monotonic()
            wait_for(lambda: _lines(windows) >= expect, timeout=3600, every=0.5, what=f"{expect} windows")
            cpu, wall = _cpu_s(worker.pid) - cpu0, time.monotonic() - t0
        finally:
            stop(worker)
    return {"checkpoint_state": checkpoint, "streams": streams, "seconds": seconds, "windows": expect,
            "worker_cpu_s": round(cpu, 2), "wall_s": round(wall, 1),
            "cpu_s_per_stream_hour": round(cpu / (streams * seconds) * 3600, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/service/state_checkpoint_cost.json"))
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from monitor.training.audio import TrainOptions, train_audio

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        f = write_factory(tmp / "factory", machines={"pump": 110.0}, normal_clips=16, test_normal=4,
                          test_faulty=4, seconds=3.0, seed=7)["pump"]
        train_audio(f["train"], tmp / "pump", TrainOptions(seed=0, epochs=25, device="cpu",
                                                          params={"batch_size": 64}, holdout=0.25))
        clips = []
        for i in range(6):
            x = inject_fault(machine_sound(seconds=10.0, f0=110.0, seed=900 + i), kind="harmonic",
                             start_s=0.0, end_s=11.0, seed=i)
            sf.write(tmp / f"m-{i}.wav", x, 16000, subtype="PCM_16")
            clips.append(sf.read(tmp / f"m-{i}.wav", dtype="float32")[0])
        rows = []
        for checkpoint in (False, True):
            work = tmp / f"run-{checkpoint}"
            work.mkdir()
            rows.append(run(tmp / "pump", clips, streams=a.streams, seconds=a.seconds, checkpoint=checkpoint,
                            work=work))
            print(json.dumps(rows[-1]), flush=True)
    result = {"runs": rows, "cpu_ratio_on_over_off": round(rows[1]["worker_cpu_s"] / rows[0]["worker_cpu_s"], 3),
              "command": f"benchmarks/state_checkpoint_cost.py --streams {a.streams} --seconds {a.seconds}"}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
