"""The service's worker under the benchmark: ``python -m monitor.bench.e2e_worker CFG OUT T0 THREADS``
(``THREADS`` 0 = ``service.torch_threads`` from the config, as ``monitor run`` uses it).

It is the real ``monitor.service.worker.Worker`` (consumer, decoding, routing, pipeline, alerting,
Kafka events sink); the subclass only notes when each alerting window was scored and when
the partitions were assigned, and when each chunk arrived (the poll that returned it), in
memory, and writes them to ``OUT`` after a clean stop (SIGTERM). ``T0`` is the parent's ``time.time()`` just before it started this process.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from workers.model import AlertingWindow


def main(argv: list[str]) -> int:
    cfg_path, out, t0, threads = argv[0], Path(argv[1]), float(argv[2]), int(argv[3])
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from monitor.config import load_config  # noqa: PLC0415
    from monitor.logs import setup_logging  # noqa: PLC0415
    from monitor.service.worker import Worker  # noqa: PLC0415

    if os.environ.get("MONITOR_BENCH_PLAIN") == "1":  # the unoptimised maths, for before/after figures
        from models.ae.scorer import AutoencoderScorer  # noqa: PLC0415
        from workers.features.logmel import LogMel  # noqa: PLC0415

        AutoencoderScorer.fast = LogMel.fast = False
    cfg = load_config(cfg_path)
    threads = threads or cfg.service.torch_threads  # as ``monitor run`` does (service.run_worker)
    if threads > 0:
        torch.set_num_threads(threads)
    setup_logging(level="warning", fmt="json")
    ends: list[int] = []
    scored: list[float] = []
    window_stream: list[int] = []
    stream_ids: dict[str, int] = {}
    # per accepted chunk: stream, end sample, wall-clock arrival (the poll that returned it)
    chunk_stream: list[int] = []
    chunk_end: list[int] = []
    chunk_arrival: list[float] = []
    wall_minus_mono = time.time() - time.monotonic()
    marks: dict[str, float] = {}
    arrival_to_scored: list[float] = []

    class BenchWorker(Worker):
        def _on_window(self, model, w) -> None:
            super()._on_window(model, w)
            ends.append(w.end_sample)
            scored.append(time.time())
            window_stream.append(stream_ids.setdefault(w.stream, len(stream_ids)))
            if "first_window" not in marks:
                marks["first_window"] = time.time() - t0

        def _on_audio(self, tp, m, now: float) -> None:
            super()._on_audio(tp, m, now)
            stream = m.key.decode("utf-8", "replace") if m.key else None
            st = self.streams.get(stream)
            if st is not None and st.last_offset == m.offset and st.tp == tp:
                chunk_stream.append(stream_ids.setdefault(stream, len(stream_ids)))
                chunk_end.append(st.next_sample)
                chunk_arrival.append(now + wall_minus_mono)

        def _score(self) -> None:
            arrivals = list(self.pending.arrivals)
            super()._score()
            if arrivals:  # the service's own chunk-arrival-to-scored latency, every chunk
                done = time.monotonic()
                arrival_to_scored.extend(done - a for a in arrivals)

        def on_assigned(self, assigned) -> None:
            super().on_assigned(assigned)
            if assigned and "assigned" not in marks:
                marks["assigned"] = time.time() - t0
                (out / "ready").write_text(json.dumps(marks))

    marks["constructed"] = time.time() - t0
    worker = BenchWorker(cfg)
    worker.install_signal_handlers()
    rc = worker.run()
    sr = worker.router.runners[0].model.frontend.sample_rate if worker.router.runners else 16000
    hop = (worker.router.runners[0].model.window if worker.router.runners else AlertingWindow()).hop_s
    length = worker.router.runners[0].model.window.length_s if worker.router.runners else 1.0
    np.savez(out / "windows.npz", end_sample=np.asarray(ends, dtype=np.int64),
             scored_at=np.asarray(scored, dtype=np.float64),
             window_stream=np.asarray(window_stream, dtype=np.int64),
             chunk_stream=np.asarray(chunk_stream, dtype=np.int64),
             chunk_end=np.asarray(chunk_end, dtype=np.int64),
             chunk_arrival=np.asarray(chunk_arrival, dtype=np.float64),
             arrival_to_scored=np.asarray(arrival_to_scored, dtype=np.float64))
    (out / "result.json").write_text(json.dumps({"rc": rc, "marks": marks, "sample_rate": sr, "hop_s": hop,
                                                 "length_s": length,
                                                 "events": worker.events_out,
                                                 "torch_threads": torch.get_num_threads()}))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
