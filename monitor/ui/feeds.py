"""What feeds the web view: the events (Kafka topic or the JSON-lines sink) and the workers'
``/metrics`` (per-stream window score and threshold). Each feed is a daemon thread that
survives its source going away: the error is shown on the page and the feed tries again.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from pathlib import Path

from monitor.ui.state import UiState

log = logging.getLogger(__name__)

SCORE = "monitor_stream_window_score"
THRESHOLD = "monitor_stream_threshold"
STREAMS = "monitor_streams"  # streams with state in the worker: more than its score series when
#                              it holds more streams than health.stream_metrics


class Feed:
    name = "feed"
    retry_s = 2.0  # between tries while the source is away
    say_again_s = 60.0  # the same failure is logged once per this long, with how often it recurred

    def __init__(self, state: UiState) -> None:
        self.state = state
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"ui-{self.name}", daemon=True)

    def start(self) -> "Feed":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)

    def _run(self) -> None:
        said, said_at, held = None, 0.0, 0  # a broker away for an hour is one line a minute, not 1,800
        while not self.stopping.is_set():
            try:
                self.loop()
            except Exception as exc:  # noqa: BLE001 - the page shows it; the feed retries
                text = f"{type(exc).__name__}: {exc}"
                self.state.note_feed(self.name, text)
                now = time.monotonic()
                if text != said or now - said_at >= self.say_again_s:
                    log.warning("web view feed failed, retrying", extra={
                        "feed": self.name, "error": str(exc), **({"repeats": held} if held else {})})
                    said, said_at, held = text, now, 0
                else:
                    held += 1
                self.stopping.wait(self.retry_s)

    def loop(self) -> None:
        raise NotImplementedError


class KafkaEvents(Feed):
    """Follows the events topic from its beginning, every partition, without a consumer group
    (the view commits nothing and never takes partitions from anyone): ``monitor events``'
    reader, with the config's security settings."""

    name = "events-topic"

    def __init__(self, state: UiState, kafka, *, topic: str):
        super().__init__(state)
        self.kafka, self.topic = kafka, topic

    def loop(self) -> None:
        from monitor.kafka.read_events import read_events  # noqa: PLC0415

        self.state.note_feed(self.name, None)
        for _ts, ev, raw in read_events(self.kafka, topic=self.topic, follow=True, idle_ms=300,
                                        stopping=self.stopping):
            if isinstance(ev, dict):
                self.state.add_event(ev)
            else:
                log.warning("not an event on the events topic", extra={"topic": self.topic,
                                                                        "value": raw[:200]})


class JsonlEvents(Feed):
    """Follows the JSON-lines events file the ``jsonl`` sink appends to."""

    name = "events-file"

    def __init__(self, state: UiState, path: str | Path) -> None:
        super().__init__(state)
        self.path = Path(path)

    def loop(self) -> None:
        pos, rest = 0, b""
        while not self.stopping.is_set():
            if not self.path.is_file():
                self.state.note_feed(self.name, f"{self.path}: no events file yet")
                self.stopping.wait(1.0)
                continue
            self.state.note_feed(self.name, None)
            with open(self.path, "rb") as f:
                if f.seek(0, 2) < pos:
                    pos, rest = 0, b""  # truncated or replaced: read it again
                f.seek(pos)
                data = f.read()
                pos += len(data)
            *lines, rest = (rest + data).split(b"\n")
            for line in lines:
                if line.strip():
                    try:
                        self.state.add_event(json.loads(line))
                    except json.JSONDecodeError:
                        log.warning("not an event line", extra={"file": str(self.path)})
            self.stopping.wait(0.5)


class MetricsPoller(Feed):
    """Polls each worker's ``/metrics`` for the per-stream window score and threshold."""

    name = "metrics"

    def __init__(self, state: UiState, urls: list[str], *, every_s: float = 1.0,
                 stream_limit: int | None = None) -> None:
        super().__init__(state)
        self.urls, self.every_s = urls, every_s
        self.stream_limit = stream_limit  # the workers' health.stream_metrics, when known

    def loop(self) -> None:
        unscored: dict[str, int] = {}  # url -> streams that worker holds beyond its score series
        while not self.stopping.is_set():
            errors = []
            for url in self.urls:
                try:
                    with urllib.request.urlopen(url, timeout=2.0) as r:  # noqa: S310 - configured URL
                        text = r.read().decode()
                except OSError as exc:
                    errors.append(f"{url}: {exc}")
                    continue
                rows = parse_scores(text)
                self.state.add_scores(rows)
                held = gauge_sum(text, STREAMS)
                series = len({stream for stream, *_ in rows})
                capped = self.stream_limit is not None and series >= self.stream_limit
                # (a stream that has not finished its first window yet is no reason to speak)
                unscored[url] = max(0, int(held) - series) if held is not None and capped else 0
            self.state.note_unscored(sum(unscored.values()))
            self.state.note_feed(self.name, "; ".join(errors) or None)
            self.stopping.wait(self.every_s)


def parse_scores(text: str) -> list[tuple[str, str, float, float]]:
    """(stream, model version, score, threshold) from a worker's Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    score, thr = {}, {}
    for fam in text_string_to_metric_families(text):
        if fam.name in (SCORE, THRESHOLD):
            for s in fam.samples:
                key = (s.labels.get("stream", ""), s.labels.get("model", ""))
                (score if fam.name == SCORE else thr)[key] = s.value
    return [(st, mv, v, thr.get((st, mv), 0.0)) for (st, mv), v in score.items()]


def gauge_sum(text: str, name: str) -> float | None:
    """The sum of a metric family's samples in a worker's Prometheus text (None: not there)."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    found = [s.value for fam in text_string_to_metric_families(text) if fam.name == name for s in fam.samples]
    return sum(found) if found else None
