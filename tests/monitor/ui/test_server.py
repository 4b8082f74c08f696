"""The web view's server, through a real HTTP client against the real server on a free port:
auth, paths, labelling (the record `monitor label` writes), paging, live updates, feeds."""
from __future__ import annotations

import base64
import http.client
import json
import os
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from monitor.alerting.events import make_event
from monitor.errors import ConfigError
from monitor.runtime.event_audio import EventAudioSpec, EventAudioStore
from monitor.sources.base import AudioChunk
from monitor.ui.server import UiOptions, UiServer
from monitor.ui.state import Route, UiState

SR = 16000
STREAM = "line3/pump-02"
JSON = {"Content-Type": "application/json"}


def _event(status="closed", start=16000, end=40000, **kw):
    return make_event(status=status, kind="machine", stream=STREAM, machine="pump", scorer="ae",
                      model_version="ae-v1", start_sample=start, end_sample=end, sample_rate=SR,
                      peak_score=42.0, threshold=30.0, severity=0.4, windows=5,
                      explanation={"top_features": [{"index": 3, "name": "mel3", "share": 0.5}]}, **kw)


@pytest.fixture
def setup(tmp_path):
    """An event with its audio written by the real event-audio store, a model root for labels."""
    store = EventAudioStore(EventAudioSpec(tmp_path / "event_audio", retain_s=5.0))
    rng = np.random.default_rng(0)
    for i in range(30):  # 3 s of 100 ms chunks
        x = (0.1 * rng.standard_normal(1600)).astype(np.float32)
        store.on_chunk(AudioChunk(stream=STREAM, samples=x, sample_rate=SR, start_sample=i * 1600))
    ev = _event()
    assert store.on_event(ev) is not None
    root = tmp_path / "models" / "pump"
    root.mkdir(parents=True)
    state = UiState([Route("line3/pump-*", root)])
    state.add_event(ev)
    return {"store": tmp_path / "event_audio", "event": ev, "root": root, "state": state, "tmp": tmp_path}


def _serve(setup, **kw) -> UiServer:
    opts = UiOptions(port=0, audio_store=str(setup["store"]), **kw)
    return UiServer(setup["state"], opts).start()


def _get(ui, path, headers=None, method="GET", body=None):
    c = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def test_token_required_everywhere(setup):
    ui = _serve(setup, token="s3cret")
    try:
        eid = setup["event"]["event_id"]
        for path in ("/", f"/event/{eid}", f"/audio/{eid}.wav", f"/figure/{eid}.png", "/api/overview",
                     "/api/events", "/api/updates", "/labels", "/static/app.js"):
            assert _get(ui, path)[0] == 401, path
            assert _get(ui, path, {"Authorization": "Bearer wrong"})[0] == 401, path
        assert _get(ui, "/api/overview", {"Authorization": "Bearer s3cret"})[0] == 200
        basic = base64.b64encode(b"ana:s3cret").decode()
        assert _get(ui, "/api/overview", {"Authorization": f"Basic {basic}"})[0] == 200
        code, headers, _ = _get(ui, "/?token=s3cret")  # a browser's first visit: sets a cookie
        assert code == 200
        cookie = headers["Set-Cookie"].split(";")[0]
        assert _get(ui, "/api/overview", {"Cookie": cookie})[0] == 200
        assert _get(ui, "/api/label", {"Content-Type": "application/json"}, "POST", "{}")[0] == 401
    finally:
        ui.close()


def test_no_path_outside_the_event_audio_store(setup):
    secret = setup["tmp"] / "secret.wav"
    secret.write_bytes(b"RIFF not for you")
    link = setup["store"] / ("ab" * 12 + ".wav")  # a valid-looking id that links outside the store
    os.symlink(secret, link)
    ui = _serve(setup)
    try:
        eid = setup["event"]["event_id"]
        code, headers, data = _get(ui, f"/audio/{eid}.wav")
        assert code == 200 and headers["Content-Type"] == "audio/wav" and data[:4] == b"RIFF"
        for path in ("/audio/../secret.wav", "/audio/..%2Fsecret.wav", "/audio/%2E%2E/secret.wav",
                     f"/audio/{'ab' * 12}.wav", "/audio//etc/passwd.wav", "/static/../server.py",
                     "/static/..%2Fserver.py", "/static/%2E%2E%2Fstate.py", f"/figure/../{eid}.png"):
            code, _, data = _get(ui, path)
            assert code == 404, path
            assert b"not for you" not in data
    finally:
        ui.close()


def test_label_record_is_the_one_monitor_label_writes(setup, tmp_path):
    from monitor.cli import main

    ev = setup["event"]
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(ev) + "\n")
    cli_root = tmp_path / "cli-model"
    cli_root.mkdir()
    assert main(["label", str(events), "--event-id", ev["event_id"], "--as", "fault", "--model",
                 str(cli_root), "--audio", str(setup["store"]), "--by", "ana", "--note", "bearing"]) == 0
    ui = _serve(setup, labelling=True)
    try:
        body = json.dumps({"event_id": ev["event_id"], "label": "fault", "by": "ana", "note": "bearing"})
        code, _, data = _get(ui, "/api/label", {"Content-Type": "application/json"}, "POST", body)
        assert code == 200, data
    finally:
        ui.close()
    cli = json.loads((cli_root / "labels.jsonl").read_text().splitlines()[-1])
    web = json.loads((setup["root"] / "labels.jsonl").read_text().splitlines()[-1])
    assert json.loads(data) == web
    t_cli, t_web = cli.pop("labelled_at"), web.pop("labelled_at")
    assert web == cli
    assert web["labelled_by"] == "ana" and web["label"] == "fault"
    assert abs(time.mktime(time.strptime(t_web, "%Y-%m-%dT%H:%M:%SZ"))
               - time.mktime(time.strptime(t_cli, "%Y-%m-%dT%H:%M:%SZ"))) < 60
    assert (setup["root"] / web["audio"]).read_bytes() == (cli_root / cli["audio"]).read_bytes()


def test_basic_auth_user_is_who_labels(setup):
    ui = _serve(setup, labelling=True, token="t0k")
    try:
        basic = base64.b64encode(b"bob:t0k").decode()
        body = json.dumps({"event_id": setup["event"]["event_id"], "label": "normal", "by": "mallory"})
        code, _, data = _get(ui, "/api/label", {"Authorization": f"Basic {basic}", **JSON}, "POST", body)
        assert code == 200 and json.loads(data)["labelled_by"] == "bob"
    finally:
        ui.close()


def test_read_only_unless_labelling_is_on(setup):
    ui = _serve(setup)
    try:
        body = json.dumps({"event_id": setup["event"]["event_id"], "label": "fault"})
        code, _, data = _get(ui, "/api/label", JSON, "POST", body)
        assert code == 403 and b"labelling is off" in data
        assert not (setup["root"] / "labels.jsonl").exists()
        _, _, page = _get(ui, f"/event/{setup['event']['event_id']}")
        assert b"label-fault" not in page and b"Labelling is off" in page
    finally:
        ui.close()


def test_refuses_to_bind_beyond_loopback_with_labelling_and_no_token(setup):
    with pytest.raises(ConfigError, match="token"):
        UiServer(setup["state"], UiOptions(host="0.0.0.0", port=0, labelling=True))
    ui = UiServer(setup["state"], UiOptions(host="0.0.0.0", port=0, labelling=True, token="x"))
    ui.server.server_close()


def test_a_label_from_another_site_is_refused(setup):
    """A page elsewhere can make the engineer's browser POST to the view (a plain form needs no
    permission, and the browser adds its basic-auth credentials): only JSON from the view's own
    origin labels."""
    ui = _serve(setup, labelling=True)
    eid = setup["event"]["event_id"]
    own = f"http://127.0.0.1:{ui.port}"
    # a text/plain form whose body happens to parse as JSON: the classic cross-site label
    form = '{"event_id": "%s", "label": "normal", "pad": "="}' % eid
    try:
        for headers, body in (({"Content-Type": "text/plain"}, form),
                              ({"Content-Type": "application/x-www-form-urlencoded"}, form),
                              ({}, form),
                              ({**JSON, "Origin": "http://evil.example"}, form),
                              ({**JSON, "Origin": "null"}, form),
                              ({**JSON, "Sec-Fetch-Site": "cross-site"}, form)):
            code, _, data = _get(ui, "/api/label", headers, "POST", body)
            assert code == 403 and b"refused" in data, (headers, data)
        assert not (setup["root"] / "labels.jsonl").exists()
        ok = {**JSON, "Origin": own, "Sec-Fetch-Site": "same-origin"}  # what the view's page sends
        code, _, data = _get(ui, "/api/label", ok, "POST", json.dumps({"event_id": eid, "label": "fault"}))
        assert code == 200, data
    finally:
        ui.close()


def test_loopback_view_answers_loopback_names_only(setup):
    """DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1 sends
    Host: evil.example; the view bound to loopback does not serve it."""
    ui = _serve(setup)
    try:
        for host in (f"127.0.0.1:{ui.port}", f"localhost:{ui.port}", "localhost", f"[::1]:{ui.port}"):
            assert _get(ui, "/api/overview", {"Host": host})[0] == 200, host
        for host in (f"evil.example:{ui.port}", "evil.example", f"127.0.0.1.evil.example:{ui.port}"):
            assert _get(ui, "/api/overview", {"Host": host})[0] == 403, host
            assert _get(ui, f"/audio/{setup['event']['event_id']}.wav", {"Host": host})[0] == 403, host
    finally:
        ui.close()


def test_a_port_in_use_or_a_foreign_address_is_one_line():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on http://127.0.0.1:{port}/: "):
            UiServer(UiState(), UiOptions(port=port))
    with pytest.raises(ConfigError, match="cannot listen on http://192.0.2.1:0/"):  # TEST-NET-1
        UiServer(UiState(), UiOptions(host="192.0.2.1", port=0, token="t"))


def test_ipv6_loopback_binds():
    if not socket_has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    ui = UiServer(UiState(), UiOptions(host="::1", port=0)).start()
    try:
        assert ui.url == f"http://[::1]:{ui.port}/"
        c = http.client.HTTPConnection("::1", ui.port, timeout=10)
        c.request("GET", "/api/overview")
        assert c.getresponse().status == 200
        c.close()
    finally:
        ui.close()


def socket_has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_event_page_has_details_figure_and_audio(setup):
    ui = _serve(setup, labelling=True)
    try:
        eid = setup["event"]["event_id"]
        code, _, page = _get(ui, f"/event/{eid}")
        text = page.decode()
        assert code == 200
        for needle in (f'src="/audio/{eid}.wav"', f'src="/figure/{eid}.png"', "mel3", "42", "label-fault"):
            assert needle in text, needle
        code, headers, png = _get(ui, f"/figure/{eid}.png")
        assert code == 200 and png[:8] == b"\x89PNG\r\n\x1a\n" and headers["Content-Type"] == "image/png"
        assert _get(ui, "/event/" + "0" * 24)[0] == 404
    finally:
        ui.close()


def test_overview_pages_and_filters_1000_streams(setup):
    state = setup["state"]
    rows = [(f"hall/m-{i:04d}", "ae-v1", float(i % 50), 30.0) for i in range(1000)]
    state.add_scores(rows)
    state.add_event(_event(status="open", start=80000, end=96000))  # line3/pump-02 has an open event
    ui = _serve(setup)
    try:
        _, _, data = _get(ui, "/api/overview?page=0&per_page=50")
        ov = json.loads(data)
        assert ov["total"] == 1001 and len(ov["streams"]) == 50
        assert ov["streams"][0]["stream"] == STREAM and ov["streams"][0]["open_events"]
        ratios = [r["ratio"] for r in ov["streams"][1:]]
        assert ratios == sorted(ratios, reverse=True)  # then by score / threshold
        _, _, data = _get(ui, "/api/overview?q=m-09&per_page=50&page=1")
        ov = json.loads(data)
        assert ov["total"] == 100 and ov["page"] == 1 and len(ov["streams"]) == 50
        assert all("m-09" in r["stream"] for r in ov["streams"])
        _, _, data = _get(ui, "/api/overview?page=999")
        assert json.loads(data)["page"] == 20  # clamped to the last page
    finally:
        ui.close()


def test_quiet_and_unhealthy_streams_are_visible():
    state = UiState(quiet_s=5.0)
    state.add_scores([("a", "v", 1.0, 2.0), ("b", "v", 1.0, 2.0)], now=100.0)
    state.add_scores([("a", "v", 1.5, 2.0), ("b", "v", 1.0, 2.0)], now=110.0)  # b's gauge stood still
    state.add_event({"event_id": "c" * 24, "status": "open", "kind": "clipping", "stream": "a"})
    rows = {r["stream"]: r for r in state.overview(now=111.0)["streams"]}
    assert rows["a"]["state"] == "unhealthy" and rows["a"]["health"][0]["kind"] == "clipping"
    assert rows["b"]["state"] == "quiet" and rows["b"]["last_change_s"] == 11.0
    state.add_event({"event_id": "c" * 24, "status": "closed", "kind": "clipping", "stream": "a"})
    assert {r["stream"]: r for r in state.overview(now=111.0)["streams"]}["a"]["state"] == "ok"


def test_server_sent_events_announce_changes(setup):
    ui = _serve(setup, sse_min_interval_s=0.05)
    try:
        r = urllib.request.urlopen(f"http://127.0.0.1:{ui.port}/api/updates", timeout=10)
        first = r.readline()
        assert first.startswith(b"data: ")
        r.readline()
        setup["state"].add_event(_event(status="open", start=99999, end=120000))
        second = r.readline()
        assert int(second[6:]) > int(first[6:])
        r.close()
    finally:
        ui.close()


def test_labels_page_lists_labels_and_the_retrain_command(setup):
    ui = _serve(setup, labelling=True)
    try:
        body = json.dumps({"event_id": setup["event"]["event_id"], "label": "fault", "by": "ana"})
        assert _get(ui, "/api/label", JSON, "POST", body)[0] == 200
        _, _, page = _get(ui, "/labels")
        text = page.decode()
        assert setup["event"]["event_id"] in text and "ana" in text
        assert f"monitor train --scorer ws-ae --from-model {setup['root']}" in text
    finally:
        ui.close()


def test_static_assets_ship_in_the_package():
    from importlib import resources

    for name in ("app.js", "style.css"):
        assert resources.files("monitor.ui").joinpath("static", name).read_bytes()
    text = Path("pyproject.toml").read_text()
    assert '"monitor.ui" = ["static/*.js", "static/*.css"]' in text


# -- sensor events --------------------------------------------------------------------------
SENSOR_STREAM = "line3/press-01"
CH = ["temp", "pressure", "current"]
T0 = 1_700_000_000.0


@pytest.fixture
def sensor_setup(setup):
    """A sensor event whose rows the real sensor event store wrote into the same folder as the
    audio event's, and the event in the view's state."""
    from monitor.runtime.sensor_events import SensorEventSpec, SensorEventStore

    store = SensorEventStore(SensorEventSpec(setup["store"], retain_rows=200, context_rows=10,
                                             after_rows=3), channels=CH, step_s=1.0)
    k = np.arange(120, dtype=np.float64)
    rows = np.stack([50 + 0.01 * k, 1.0 + (k >= 60) * (k < 80) * 1.2, 3 + 0.1 * np.sin(k)], axis=1)
    for i in range(0, 120, 16):
        store.on_chunk(AudioChunk(SENSOR_STREAM, rows[i:i + 16], 1.0, i, time_origin_s=T0, id_base=int(T0)))
    ev = make_event(status="closed", kind="machine", stream=SENSOR_STREAM, machine="press", scorer="arima",
                    model_version="arima-v1", start_sample=60, end_sample=80, sample_rate=1.0,
                    time_origin_s=T0, id_base=int(T0), peak_score=9.0, threshold=3.0, severity=0.8,
                    windows=20, explanation={"top_features": [{"index": 1, "name": "pressure", "share": 0.7},
                                                              {"index": 0, "name": "temp", "share": 0.2}]})
    assert store.on_event(ev) is not None
    setup["state"].add_event(ev)
    return {**setup, "sensor_event": ev, "rows": rows}


def test_sensor_event_page_shows_the_channels_traces(sensor_setup):
    from monitor.ui.figures import channel_order

    ui = _serve(sensor_setup, labelling=True)
    try:
        ev = sensor_setup["sensor_event"]
        eid = ev["event_id"]
        code, _, page = _get(ui, f"/event/{eid}")
        text = page.decode()
        assert code == 200 and "Sensor channels" in text and "<audio" not in text
        for needle in (f'src="/figure/{eid}.png"', f'href="/sensors/{eid}.json"', "pressure", "0.7"):
            assert needle in text, needle
        assert "label-fault" not in text and "a sensor event has none" in text
        code, headers, png = _get(ui, f"/figure/{eid}.png")
        assert code == 200 and png[:8] == b"\x89PNG\r\n\x1a\n" and headers["Content-Type"] == "image/png"
        code, headers, data = _get(ui, f"/sensors/{eid}.json")
        doc = json.loads(data)
        assert code == 200 and headers["Content-Type"] == "application/json"
        assert doc["channels"] == CH and doc["index"] == list(range(50, 83))
        assert doc["rows"] == sensor_setup["rows"][50:83].tolist() and doc["event"]["event_id"] == eid
        assert doc["ts"][10] == ev["start"] and doc["event_start_index"] == 60
        assert channel_order(ev, CH) == ["pressure", "temp", "current"]
        # the audio event beside it is still an audio event; its sidecar is not sensor rows
        aid = sensor_setup["event"]["event_id"]
        assert 'src="/audio/' in _get(ui, f"/event/{aid}")[2].decode()
        assert _get(ui, f"/sensors/{aid}.json")[0] == 404
        for path in ("/sensors/../x.json", f"/sensors/..%2F{eid}.json", f"/sensors/%2E%2E/{eid}.json",
                     f"/sensors/{'ab' * 12}.json", "/sensors//etc/passwd.json", f"/sensors/{eid}.wav"):
            assert _get(ui, path)[0] == 404, path
    finally:
        ui.close()


def test_sensor_figure_with_the_windows_log_and_the_token(sensor_setup, tmp_path):
    """With the service's windows log the figure adds the windows' scores; with a token the
    traces, like the audio, need it."""
    log = tmp_path / "windows.jsonl"
    ev = sensor_setup["sensor_event"]
    log.write_text("".join(json.dumps({"stream": SENSOR_STREAM, "model_version": "arima-v1", "index": k,
                                       "start_sample": k, "end_sample": k + 1, "score": 1.0 + (60 <= k < 80) * 8})
                           + "\n" for k in range(40, 100)))
    from monitor.ui.figures import event_windows

    assert len(event_windows(ev, log, 50, 83)) == 33
    ui = _serve(sensor_setup, token="s3cret", windows_log=str(log))
    try:
        eid = ev["event_id"]
        for path in (f"/sensors/{eid}.json", f"/figure/{eid}.png", f"/event/{eid}"):
            assert _get(ui, path)[0] == 401, path
        auth = {"Authorization": "Bearer s3cret"}
        code, _, png = _get(ui, f"/figure/{eid}.png", auth)
        assert code == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("MONITOR_UI_FIGURE"):
            Path(os.environ["MONITOR_UI_FIGURE"]).write_bytes(png)
        assert _get(ui, f"/sensors/{eid}.json", auth)[0] == 200
    finally:
        ui.close()
