"""A user's own recordings (issue 19, item 7): every "Why" case of the issue re-run as written
there, each now a clear choice or a clear, non-zero stop naming the file and both values."""
from __future__ import annotations

import fcntl
import fnmatch
import os
import pty
import re
import shlex
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from monitor.cli import build_parser, main
from monitor.datasets import ReadReport, read_clip, resample

ROOT = Path(__file__).resolve().parents[3]
SR = 16000


@pytest.fixture(scope="module")
def clip(factory) -> np.ndarray:
    x, sr = sf.read(sorted(Path(factory["test"]).glob("normal_*.wav"))[0], dtype="float32")
    assert sr == SR
    return x


def _replay(model, data, *extra) -> int:
    return main(["replay", "--model", str(model), "--data", str(data), "--device", "cpu", *extra])


def test_stereo_right_channel_is_a_stated_choice(trained_model, clip, tmp_path, capsys):
    """Why: sound only on the right channel scored 17,632 against 67 (channel 0 used silently)."""
    path = tmp_path / "pump_stereo.wav"
    sf.write(path, np.stack([np.zeros_like(clip), clip], 1), SR, subtype="PCM_16")
    assert _replay(trained_model, path) == 2
    err = capsys.readouterr().err
    assert "pump_stereo.wav: 2 channels, the model takes 1" in err and "--channel" in err
    assert "no usable clips" in err
    sf.write(tmp_path / "mono.wav", clip, SR, subtype="PCM_16")
    scores = {}
    for name, extra in (("right", ["--channel", "1"]), ("mean", ["--channel", "mean"]), ("mono", [])):
        data = tmp_path / "mono.wav" if name == "mono" else path
        assert _replay(trained_model, data, *extra) == 0
        out = capsys.readouterr().out
        scores[name] = float(re.search(r"^\S+\s+[\d.]+\s+\d+\s+(\S+)", out.split("clip score")[1].strip(),
                                       re.M).group(1))
    assert scores["right"] == pytest.approx(scores["mono"], rel=1e-4)
    assert scores["mean"] != pytest.approx(scores["mono"], rel=1e-2)  # half the level: another score


def test_a_lower_sample_rate_is_named_with_both_values_not_upsampled(trained_model, clip, tmp_path, capsys):
    """Why: an 8 kHz file was upsampled, 'resampling' said, and raised a severity-86 event."""
    path = tmp_path / "pump_8k.wav"
    sf.write(path, resample(clip, SR, 8000), 8000, subtype="PCM_16")
    assert _replay(trained_model, path) == 2
    err = capsys.readouterr().err
    assert "pump_8k.wav: sample rate 8000 Hz, the model's is 16000 Hz" in err
    report = ReadReport()
    higher = tmp_path / "pump_48k.wav"
    sf.write(higher, resample(clip, SR, 48000), 48000, subtype="PCM_16")
    assert read_clip(higher, sample_rate=SR, report=report) is not None
    assert report.converted == {"resampled-48000": 1}


def test_a_truncated_wav_is_named(clip, tmp_path, trained_model, capsys):
    """Why: a truncated WAV was accepted as a 3.3 s clip."""
    full = tmp_path / "full.wav"
    sf.write(full, clip, SR, subtype="PCM_16")
    data = full.read_bytes()
    cut = tmp_path / "pump_cut.wav"
    cut.write_bytes(data[: 44 + 2 * int(1.3 * SR)])
    report = ReadReport()
    assert read_clip(full, sample_rate=SR, report=report) is not None
    assert read_clip(cut, sample_rate=SR, report=report) is None
    assert report.skipped == {"truncated": 1}
    assert _replay(trained_model, cut) == 2
    assert re.search(r"pump_cut\.wav: truncated: the header declares \d+ frames, the file holds 20800",
                     capsys.readouterr().err)


def test_replay_of_a_txt_or_a_csv_with_an_audio_model_exits_non_zero(trained_model, tmp_path, capsys):
    """Why: both exited 0 with "0 stream(s)"."""
    (tmp_path / "notes.txt").write_text("not audio\n")
    (tmp_path / "readings.csv").write_text("time,temp\n2024-01-01T00:00:00,1.0\n")
    assert _replay(trained_model, tmp_path / "notes.txt") == 2
    assert "notes.txt: not an audio file: looked for .flac/.ogg/.wav" in capsys.readouterr().err
    assert _replay(trained_model, tmp_path / "readings.csv") == 2
    assert "sensor model" in capsys.readouterr().err
    assert _replay(trained_model, tmp_path) == 2
    assert "no audio clips (.wav/.flac/.ogg) but .csv files" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_thresholds_must_be_finite_and_positive(trained_model, factory, value, capsys):
    """Why: `--threshold -1` was accepted and every window alarmed."""
    for cmd in (["replay", "--data", factory["test"]], ["evaluate", "--data", factory["test"]]):
        with pytest.raises(SystemExit) as exc:
            main([cmd[0], "--model", str(trained_model), *cmd[1:], f"--threshold={value}"])
        assert exc.value.code == 2
        assert "finite and positive" in capsys.readouterr().err


def test_a_sensor_model_on_a_wav_folder_is_a_clear_error(tmp_path, factory, capsys):
    """Why: evaluating a sensor model on a WAV folder ended in a TypeError traceback."""
    from tests.monitor.runtime.test_sensors import synth_rows, write_csv

    write_csv(tmp_path / "train.csv", synth_rows(400, 0))
    assert main(["train", "--scorer", "arima", "--data", str(tmp_path / "train.csv"), "--time-column", "time",
                 "--out", str(tmp_path / "m"), "--param", "span=3", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", factory["test"], "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "a sensor model (channels temp, pressure, current) cannot score the audio clips" in err
    assert "Traceback" not in err


def test_training_takes_a_folder_of_own_recordings_with_normal(factory, tmp_path, capsys):
    """Why: pump_rec_001.wav gave "no clips named 'normal'" with no way to say otherwise."""
    own = tmp_path / "recordings"
    own.mkdir()
    for i, p in enumerate(sorted(Path(factory["train"]).glob("*.wav"))[:8]):
        (own / f"pump_rec_{i:03d}.wav").write_bytes(p.read_bytes())
    out = tmp_path / "m"
    assert main(["train", "--data", str(own), "--out", str(out), "--epochs", "1", "--device", "cpu"]) == 2
    assert "--normal '*'" in capsys.readouterr().err
    assert main(["train", "--data", str(own), "--out", str(out), "--epochs", "1", "--device", "cpu",
                 "--normal", "pump_rec_*", "--holdout", "0.4"]) == 0
    assert (out / "latest").is_file()
    (own / "pump_anomaly_009.wav").write_bytes((own / "pump_rec_000.wav").read_bytes())
    assert main(["train", "--data", str(own), "--out", str(out), "--normal", "*", "--epochs", "1"]) == 2
    assert "picks clips named 'anomaly': pump_anomaly_009.wav" in capsys.readouterr().err


def test_the_readme_produce_step_keys_streams_that_route(tmp_path, clip):
    """Why: the README's produce step keyed streams by file name: every chunk went to the
    dead-letter topic. The command as the README writes it must give keys that the edge
    config's routes match (the service matches with fnmatchcase, monitor/service.py)."""
    from monitor.kafka.producer import file_chunks
    from monitor.config import load_config

    readme = (ROOT / "README.md").read_text()
    line = next(m.group(1) for m in re.finditer(r"`(monitor produce audio --[^`]*--data DIR[^`]*)`",
                                                readme.replace("\n   ", " ")))
    argv = shlex.split(line.replace("HOST", "127.0.0.1"))[1:]
    args = build_parser().parse_args([a if a != "DIR" else str(tmp_path) for a in argv])
    sf.write(tmp_path / "rec_001.wav", clip[:SR], SR, subtype="PCM_16")
    keys = {c.stream for c in file_chunks([tmp_path / "rec_001.wav"], sample_rate=args.sample_rate,
                                          chunk_ms=args.chunk_ms, streams=args.streams, prefix=args.prefix)}
    patterns = [r.streams for r in load_config(ROOT / "configs" / "edge.yaml").models]
    assert keys and all(any(fnmatch.fnmatchcase(k, p) for p in patterns) for k in keys), (keys, patterns)
    assert "--prefix" in readme


@pytest.mark.parametrize("command", ["evaluate", "replay"])
def test_evaluate_and_replay_show_progress_on_a_terminal(trained_model, factory, command):
    """Why: `evaluate` showed no progress. On a terminal (a real pty here) a bar counts files."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen([sys.executable, "-m", "monitor", command, "--model", str(trained_model),
                             "--data", factory["test"], "--device", "cpu"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=secondary, env=env, cwd=ROOT)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert proc.wait(timeout=300) == 0
    text = seen.decode(errors="replace")
    assert re.search(rf"\r{command}: .*\d+/?\d*\s?file", text), text[-2000:]
