"""The web view's HTTP server: pages, a JSON API, server-sent events, event audio, sensor
events' rows and figures.

Built on the standard library's ``ThreadingHTTPServer`` (the same server the workers' health
endpoint uses): no new dependency, nothing to build, and one thread per open page is plenty
for the handful of engineers who watch a line. Security: it binds 127.0.0.1 unless told
otherwise; with a token every request needs it (``Authorization: Bearer``, basic auth whose
password is the token, or ``?token=`` once, which sets a cookie); it is read-only unless
labelling is on, and refuses to bind beyond loopback with labelling on and no token. Bound to
loopback it answers only requests addressed to a loopback name (DNS rebinding); a label must
come as JSON from the view's own origin (no cross-site form or script can send one). Files are
served only from the package's own static folder (by name) and from the event store, the
event audio and sensor events' rows (by a 24-hex-digit event id, resolved inside the store).
"""
from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from monitor.errors import ConfigError, DataError
from monitor.ui import pages
from monitor.ui.state import UiState

log = logging.getLogger(__name__)

EVENT_ID = re.compile(r"^[0-9a-f]{24}$")
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
COOKIE = "monitor_ui_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class UiOptions:
    host: str = "127.0.0.1"
    port: int = 8090
    token: str = ""
    labelling: bool = False
    audio_store: str = ""      # the service's sinks.event_audio folder
    windows_log: str = ""      # the service's service.windows_log (score trace of an event)
    sse_min_interval_s: float = 0.5

    def check(self) -> None:
        if self.labelling and not self.token and self.host not in LOOPBACK:
            raise ConfigError(f"web view: labelling is on and no token is set, so it will not bind "
                              f"to {self.host} (only 127.0.0.1): set a token (--token or "
                              f"MONITOR_UI_TOKEN)")


class UiServer:
    def __init__(self, state: UiState, options: UiOptions) -> None:
        options.check()
        self.state, self.opt = state, options
        self.figures: dict[str, bytes] = {}  # event id + status -> PNG (small cache)
        handler = _handler(self)
        server_class = _Server6 if ":" in options.host else ThreadingHTTPServer
        try:
            self.server = server_class((options.host, options.port), handler)
        except OSError as exc:  # port taken, an address this machine does not have, ...
            raise ConfigError(f"web view: cannot listen on {self.url_for(options.host, options.port)}: "
                              f"{exc.strerror or exc}") from None
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="ui", daemon=True)
        self.stopping = threading.Event()

    @staticmethod
    def url_for(host: str, port: int) -> str:
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}/"

    @property
    def url(self) -> str:
        return self.url_for(self.opt.host, self.port)

    def start(self) -> "UiServer":
        self.thread.start()
        log.info("web view up", extra={"url": self.url, "labelling": self.opt.labelling})
        return self

    def close(self) -> None:
        self.stopping.set()
        with self.state.changed:
            self.state.changed.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- helpers used by the handler ------------------------------------------------------
    def who(self, headers) -> tuple[bool, str]:
        """(authorised, basic-auth user or '')."""
        token = self.opt.token
        auth = headers.get("Authorization", "")
        user = ""
        if auth.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False, ""
            return (not token or hmac.compare_digest(pw, token)), user
        if not token:
            return True, ""
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip(), token):
            return True, ""
        for part in headers.get("Cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == COOKIE and hmac.compare_digest(v, token):
                return True, ""
        return False, ""

    def host_refused(self, headers) -> bool:
        """Bound to loopback, only loopback names are served: a page elsewhere whose name is made
        to resolve to 127.0.0.1 (DNS rebinding) would otherwise read the view as its own."""
        if self.opt.host not in LOOPBACK:
            return False
        host = headers.get("Host", "").strip().lower()
        name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        return bool(host) and name not in LOOPBACK

    @staticmethod
    def cross_site(headers) -> str | None:
        """Why a label request is refused as not coming from the view's own page, or None. A page
        elsewhere can make the engineer's browser POST here (a plain form needs no permission,
        and the browser adds its basic-auth credentials): the view's script sends JSON from
        this origin, which a form cannot, and a script elsewhere may not without asking first
        (a CORS preflight, which this server does not answer)."""
        if headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            return "a label is sent as application/json"
        site = headers.get("Sec-Fetch-Site", "")
        if site and site not in ("same-origin", "none"):
            return f"a cross-site request (Sec-Fetch-Site: {site})"
        origin = headers.get("Origin", "")
        if origin and origin != "null" and urlsplit(origin).netloc != headers.get("Host", ""):
            return f"a request from another origin ({origin})"
        if origin == "null":
            return "a request from an opaque origin"
        return None

    def _stored(self, event_id: str, suffix: str) -> Path | None:
        """An event's file in the event store, only ever inside it (by a 24-hex-digit id)."""
        if not self.opt.audio_store or not EVENT_ID.match(event_id):
            return None
        store = Path(self.opt.audio_store).resolve()
        path = (store / f"{event_id}{suffix}").resolve()
        if not path.is_relative_to(store) or not path.is_file():
            return None
        return path

    def audio_path(self, event_id: str) -> Path | None:
        """The stored WAV of an event, only ever inside the event-audio store."""
        return self._stored(event_id, ".wav")

    def sensor_rows(self, event_id: str) -> tuple[Path, dict[str, Any]] | None:
        """The stored grid rows of a sensor event (``<id>.json`` of format sensor-rows/1, with
        no wav beside it), only ever inside the store."""
        from monitor.runtime.sensor_events import find_event_rows  # noqa: PLC0415

        path = self._stored(event_id, ".json")
        return None if path is None else find_event_rows(path.parent, event_id)

    def label(self, event_id: str, label: str, note: str, by: str) -> dict[str, Any]:
        from monitor.training.labels import LABELS, model_root, write_label  # noqa: PLC0415

        ev = self.state.event(event_id) if EVENT_ID.match(event_id) else None
        if ev is None or ev.get("kind", "machine") != "machine":
            raise DataError(f"no machine event {event_id!r} known to the web view")
        route = self.state.route_for(ev["stream"])
        if route is None:
            raise DataError(f"stream {ev['stream']}: no models[] route matches it, so there is no "
                            "model root to keep its label beside")
        if not self.opt.audio_store:
            raise DataError("labels need the event's audio: set sinks.event_audio in the config")
        return write_label(ev, label=label, labels=model_root(route.model_root) / LABELS,
                           audio_store=self.opt.audio_store, note=note, by=by)


class _Server6(ThreadingHTTPServer):
    """The same server on an IPv6 address (``--host ::1``)."""

    address_family = socket.AF_INET6


def _handler(ui: UiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _send(self, code: int, body: bytes | str, ctype: str = "text/plain; charset=utf-8",
                  headers: dict[str, str] | None = None) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                             "media-src 'self'; style-src 'self'; script-src 'self'")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _json(self, obj: Any, code: int = 200) -> None:
            self._send(code, json.dumps(obj), "application/json")

        def _auth(self, query: dict) -> tuple[bool, str, dict[str, str]]:
            ok, user = ui.who(self.headers)
            extra = {}
            given = query.get("token", [""])[0]
            if not ok and given and ui.opt.token and hmac.compare_digest(given, ui.opt.token):
                ok = True
                extra["Set-Cookie"] = f"{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/"
            return ok, user, extra

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            q = parse_qs(url.query)
            if ui.host_refused(self.headers):
                self._send(403, "this web view answers to 127.0.0.1 / localhost only\n")
                return
            ok, _user, extra = self._auth(q)
            if not ok:
                self._send(401, "token required\n", headers={"WWW-Authenticate": 'Basic realm="monitor"'})
                return
            try:
                self._route(url.path, q, extra)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _route(self, path: str, q: dict, extra: dict) -> None:
            html = "text/html; charset=utf-8"
            if path == "/":
                self._send(200, pages.overview(labelling=ui.opt.labelling), html, extra)
            elif path.startswith("/event/"):
                ev = ui.state.event(path[len("/event/"):])
                if ev is None:
                    self._send(404, "no such event\n")
                else:
                    has_audio = ui.audio_path(ev["event_id"]) is not None
                    has_rows = not has_audio and ui.sensor_rows(ev["event_id"]) is not None
                    self._send(200, pages.event(ev, labelling=ui.opt.labelling, has_audio=has_audio,
                                                has_rows=has_rows), html, extra)
            elif path == "/labels":
                self._send(200, pages.labels(ui.state.routes), html, extra)
            elif path.startswith("/static/"):
                name = path[len("/static/"):]
                if name not in STATIC:
                    self._send(404, "not found\n")
                else:
                    body = resources.files("monitor.ui").joinpath("static", name).read_bytes()
                    self._send(200, body, STATIC[name], {"Cache-Control": "no-cache"})
            elif path == "/api/overview":
                self._json(ui.state.overview(page=_int(q, "page", 0), per_page=min(200, _int(q, "per_page", 50)),
                                             query=q.get("q", [""])[0], sort=q.get("sort", ["severity"])[0]))
            elif path == "/api/events":
                self._json(ui.state.recent_events(limit=min(500, _int(q, "limit", 50)),
                                                  stream=q.get("stream", [""])[0]))
            elif path == "/api/updates":
                self._updates()
            elif path.startswith("/audio/") and path.endswith(".wav"):
                wav = ui.audio_path(path[len("/audio/"):-len(".wav")])
                if wav is None:
                    self._send(404, "no audio kept for that event\n")
                else:
                    self._send(200, wav.read_bytes(), "audio/wav")
            elif path.startswith("/sensors/") and path.endswith(".json"):
                kept = ui.sensor_rows(path[len("/sensors/"):-len(".json")])
                if kept is None:
                    self._send(404, "no sensor rows kept for that event\n")
                else:
                    self._send(200, kept[0].read_bytes(), "application/json")
            elif path.startswith("/figure/") and path.endswith(".png"):
                self._figure(path[len("/figure/"):-len(".png")])
            else:
                self._send(404, "not found\n")

        def _figure(self, event_id: str) -> None:
            """The event's figure: the log-mel spectrogram and score trace of its audio, or its
            sensor channels' traces, from whichever the store kept."""
            from monitor.ui.figures import event_figure, sensor_figure  # noqa: PLC0415

            ev = ui.state.event(event_id)
            wav = ui.audio_path(event_id)
            rows = ui.sensor_rows(event_id) if ev is not None and wav is None else None
            if ev is None or (wav is None and rows is None):
                self._send(404, "no audio or sensor rows kept for that event\n")
                return
            kept = wav if wav is not None else rows[0]
            key = f"{event_id}/{ev.get('status')}/{kept.stat().st_mtime_ns}"
            png = ui.figures.get(key)
            if png is None:
                if wav is not None:
                    png = event_figure(ev, wav, windows_log=ui.opt.windows_log)
                else:
                    png = sensor_figure(ev, rows[1], windows_log=ui.opt.windows_log)
                if len(ui.figures) > 64:
                    ui.figures.clear()
                ui.figures[key] = png
            self._send(200, png, "image/png")

        def _updates(self) -> None:
            """Server-sent events: the state's change counter, at most every sse_min_interval_s;
            the page then fetches the part it shows (its page of streams), so 1,000 streams cost
            the server one small JSON per open page per tick, not a push of everything."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            seen = -1
            while not ui.stopping.is_set():
                seen = ui.state.wait_change(seen, timeout=15.0)
                self.wfile.write(f"data: {seen}\n\n".encode())
                self.wfile.flush()
                if ui.stopping.wait(ui.opt.sse_min_interval_s):
                    break
            self.close_connection = True

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if ui.host_refused(self.headers):
                self._send(403, "this web view answers to 127.0.0.1 / localhost only\n")
                return
            ok, user, _ = self._auth({})
            if not ok:
                self._send(401, "token required\n", headers={"WWW-Authenticate": 'Basic realm="monitor"'})
                return
            if url.path != "/api/label":
                self._send(404, "not found\n")
                return
            if not ui.opt.labelling:
                self._send(403, "labelling is off in this web view (start it with labelling on)\n")
                return
            why = ui.cross_site(self.headers)
            if why:
                self._json({"error": f"refused: {why}; labels come from the view's own page"}, 403)
                return
            try:
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(min(n, 65536)) or b"{}")
                rec = ui.label(str(body.get("event_id", "")), str(body.get("label", "")),
                               str(body.get("note", ""))[:2000], user or str(body.get("by", ""))[:200] or "web")
            except (ValueError, DataError) as exc:
                self._json({"error": str(exc)}, 400)
                return
            ui.state.bump()
            self._json(rec)

    return Handler


def _int(q: dict, key: str, default: int) -> int:
    try:
        return max(0, int(q.get(key, [default])[0]))
    except ValueError:
        return default
