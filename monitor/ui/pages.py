"""The web view's HTML: small server-rendered pages; the live parts are filled by static/app.js.

Every value that came from an event or a file is escaped; pages load no script or style from
anywhere but /static (the server's Content-Security-Policy says so too).
"""
from __future__ import annotations

import shlex
import time
from html import escape
from typing import Any

from monitor.ui.state import Route, read_labels


def _page(title: str, body: str, *, page: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/style.css"></head>
<body data-page="{page}">
<nav><a href="/">Streams</a> <a href="/labels">Labels</a> <span class="title">{escape(title)}</span></nav>
<main>{body}</main>
<script src="/static/app.js"></script>
</body></html>
"""


def overview(*, labelling: bool) -> str:
    body = """
<section class="controls">
  <input id="filter" type="search" placeholder="filter streams (substring)">
  <label>sort <select id="sort"><option value="severity">severity</option>
  <option value="name">name</option></select></label>
  <button id="prev">&larr;</button> <span id="pageinfo"></span> <button id="next">&rarr;</button>
  <span id="live" class="dim">connecting&hellip;</span>
</section>
<p id="feederrors" class="error"></p>
<table id="streams"><thead><tr><th>stream</th><th>state</th><th>model / version</th>
<th>score / threshold</th><th>last minutes</th><th>input health</th><th>open events</th></tr></thead>
<tbody></tbody></table>
<h2>Recent events</h2>
<table id="events"><thead><tr><th>event</th><th>status</th><th>stream</th><th>start</th>
<th>severity</th><th>peak</th></tr></thead><tbody></tbody></table>
"""
    return _page("Machine monitor", body, page="overview")


def _fmt(v: Any, key: str = "") -> str:
    if key in ("start", "end") and isinstance(v, (int, float)) and v > 1e8:  # epoch seconds
        return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(v))}.{int(v % 1 * 1000):03d} UTC"
    if isinstance(v, float):
        return f"{v:.4g}"
    return escape(str(v)) if v is not None else "&ndash;"


def event(ev: dict[str, Any], *, labelling: bool, has_audio: bool, has_rows: bool = False) -> str:
    eid = escape(ev["event_id"])
    rows = "".join(f"<tr><th>{k}</th><td>{_fmt(ev.get(k), k)}</td></tr>" for k in (
        "status", "kind", "stream", "machine", "scorer", "model_version", "start", "end",
        "peak_score", "threshold", "severity", "windows"))
    top = (ev.get("explanation") or {}).get("top_features") or []
    items = "".join(f"<li>{escape(str(t.get('name')))} &ndash; {_fmt(t.get('share'))} of the "
                    "score</li>" for t in top if isinstance(t, dict))
    heading = "Sound"
    if has_audio:
        media = (f'<img id="figure" alt="log-mel spectrogram and score trace" src="/figure/{eid}.png">'
                 f'<p><audio id="audio" controls preload="auto" src="/audio/{eid}.wav"></audio></p>')
    elif has_rows:
        heading = "Sensor channels"
        media = (f'<img id="figure" alt="sensor channel traces" src="/figure/{eid}.png">'
                 f'<p><a id="rows" href="/sensors/{eid}.json">the readings (JSON)</a></p>')
    else:
        media = ("<p class='dim'>No audio or sensor readings kept for this event (the service's "
                 "sinks.event_audio is off, the event is not a machine event, or the store evicted "
                 "it).</p>")
    if has_rows and labelling:
        buttons = ("<p class='dim'>A label keeps the event's audio for retraining; a sensor "
                   "event has none, so it is not labelled here.</p>")
    elif labelling and ev.get("kind", "machine") == "machine":
        buttons = (f'<section id="labelling" data-event="{eid}">'
                   '<input id="who" placeholder="your name"> <input id="note" placeholder="note">'
                   ' <button id="label-fault" class="fault">fault</button>'
                   ' <button id="label-normal">normal (false alarm)</button>'
                   ' <span id="label-result"></span></section>')
    else:
        buttons = "<p class='dim'>Labelling is off in this view.</p>"
    body = (f"<h1>Event {eid}</h1><div class='event-grid'><div><table class='kv'>{rows}</table>"
            f"<h2>Explanation</h2><ol>{items or '<li>none given</li>'}</ol></div>"
            f"<div><h2>{heading}</h2>{media}{buttons}</div></div>")
    return _page(f"Event {ev['event_id']}", body, page="event")


def labels(routes: list[Route]) -> str:
    from monitor.training.labels import LABELS, model_root  # noqa: PLC0415

    parts = []
    for r in routes:
        root = model_root(r.model_root)
        recs = read_labels(root / LABELS)
        cmd = (f"monitor train --scorer ws-ae --from-model {shlex.quote(str(root))} "
               f"--labels {shlex.quote(str(root / LABELS))}")
        rows = "".join(
            f"<tr><td><a href='/event/{escape(x['event_id'])}'>{escape(x['event_id'])}</a></td>"
            f"<td class='{escape(x['label'])}'>{escape(x['label'])}</td><td>{_fmt(x.get('stream'))}</td>"
            f"<td>{_fmt(x.get('model_version'))}</td><td>{_fmt(x.get('labelled_by'))}</td>"
            f"<td>{_fmt(x.get('labelled_at'))}</td><td>{_fmt(x.get('note'))}</td></tr>" for x in recs)
        faults = sum(x["label"] == "fault" for x in recs)
        parts.append(
            f"<h2>{escape(str(root))} <span class='dim'>(streams {escape(r.streams)})</span></h2>"
            f"<p>{len(recs)} labels, {faults} fault, {len(recs) - faults} normal. Retrain from them "
            f"(a ws-ae model; the workers hot-load the new version):</p><pre>{escape(cmd)}</pre>"
            "<table><thead><tr><th>event</th><th>label</th><th>stream</th><th>model version</th>"
            f"<th>by</th><th>at</th><th>note</th></tr></thead><tbody>{rows}</tbody></table>")
    return _page("Labels", "".join(parts) or "<p>No models configured.</p>", page="labels")
