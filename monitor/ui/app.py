"""Wiring of the web view for a service config: its routes, the events feed, the metrics
poller and the server. Used by ``monitor ui`` and ``monitor demo --ui``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from monitor.config import Config
from monitor.ui.feeds import Feed, JsonlEvents, KafkaEvents, MetricsPoller
from monitor.ui.server import UiOptions, UiServer
from monitor.ui.state import Route, UiState


def metrics_urls(cfg: Config) -> list[str]:
    """Each worker's /metrics on this machine (worker i listens on health.port + i)."""
    if not cfg.health.port:
        return []
    host = cfg.health.host if cfg.health.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return [f"http://{host}:{cfg.health.port + i}/metrics" for i in range(cfg.service.workers)]


@dataclass
class WebView:
    state: UiState
    server: UiServer
    feeds: list[Feed] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.server.close()
        for f in self.feeds:
            f.stop()


def start_web_view(cfg: Config, options: UiOptions, *, events_file: str = "",
                   extra_metrics: list[str] = (), metrics_every_s: float = 1.0) -> WebView:
    """Start the server and its feeds: the events topic (or ``events_file``) and the workers'
    /metrics. ``options.audio_store`` and ``options.windows_log`` default to the config's."""
    from dataclasses import replace  # noqa: PLC0415

    options = replace(options, audio_store=options.audio_store or cfg.sinks.event_audio,
                      windows_log=options.windows_log or cfg.service.windows_log)
    options.check()
    state = UiState([Route(r.streams, Path(r.model)) for r in cfg.models])
    server = UiServer(state, options)
    if events_file:
        feeds: list[Feed] = [JsonlEvents(state, events_file)]
    else:
        feeds = [KafkaEvents(state, cfg.kafka, topic=cfg.kafka.events_topic)]
    urls = metrics_urls(cfg) + list(extra_metrics)
    if urls:
        feeds.append(MetricsPoller(state, urls, every_s=metrics_every_s, stream_limit=cfg.health.stream_metrics))
    for f in feeds:
        f.start()
    server.start()
    return WebView(state, server, feeds)


def serve_until_stopped(view: WebView) -> None:
    """Block until Ctrl-C or SIGTERM, then close ``view``. The handlers are installed here:
    Python leaves SIGINT ignored when a script started the command in the background."""
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    def interrupt(*_):
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        view.close()
