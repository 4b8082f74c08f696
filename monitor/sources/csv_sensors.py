"""Sensor readings from CSV files: read, check, and replay them as streams.

A CSV has one time column (ISO-8601 / ``YYYY-mm-dd HH:MM:SS`` text, or numbers = seconds) and
one numeric column per channel; ``,`` or ``;`` separated (sniffed from the header). Every
problem is a ``DataError`` naming the file, and the column or row: a missing column, a time
that does not parse, a value that is not a number. Empty cells are a channel missing in that
reading (forward-filled on the grid). One file = one stream named after the file.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.errors import DataError

#: Columns a benchmark CSV carries that are labels, never channels.
LABEL_COLUMNS = ("anomaly", "changepoint", "label", "is_anomaly")


@dataclass
class SensorTable:
    path: Path
    ts_s: np.ndarray          # [n] float64 seconds (epoch for datetimes)
    values: np.ndarray        # [n, C] float64, NaN = missing in that reading
    channels: list[str]
    labels: dict[str, np.ndarray]  # label columns found (not channels)

    @property
    def stream(self) -> str:
        return self.path.stem if self.path.parent.name in ("", ".") else f"{self.path.parent.name}/{self.path.stem}"


def list_csv(data: str | Path) -> list[Path]:
    p = Path(data)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DataError(f"{p}: no such file or folder")
    files = sorted(p.rglob("*.csv"), key=lambda f: (str(f.parent), _num_key(f.stem)))
    if not files:
        raise DataError(f"{p}: no .csv files")
    return files


def _num_key(stem: str):
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def read_sensor_csv(path: str | Path, *, time_column: str, channels: list[str] | None = None,
                    sort: bool = False) -> SensorTable:
    """Read one sensor CSV; ``channels`` None = every numeric column but time and labels.

    Time going backwards is an error naming the row, unless ``sort`` (benchmark files with
    known out-of-order rows): then rows are put in time order (stable)."""
    import pandas as pd  # noqa: PLC0415 - heavy import, only for files

    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None
    sep = ";" if header.count(";") > header.count(",") else ","
    try:
        df = pd.read_csv(path, sep=sep)
    except Exception as exc:  # pandas raises many kinds for a broken file
        raise DataError(f"{path}: not a readable CSV ({str(exc).splitlines()[0][:160]})") from None
    cols = [str(c).strip() for c in df.columns]
    df.columns = cols
    if time_column not in cols:
        raise DataError(f"{path}: no time column {time_column!r}; columns: {', '.join(cols)}")
    if len(df) < 2:
        raise DataError(f"{path}: fewer than 2 readings")
    labels = {c: df[c].to_numpy(dtype=np.float64) for c in cols if c.lower() in LABEL_COLUMNS}
    if channels is None:
        channels = [c for c in cols if c != time_column and c.lower() not in LABEL_COLUMNS]
    missing = [c for c in channels if c not in cols]
    if missing:
        raise DataError(f"{path}: channel column(s) {missing} not found; columns: {', '.join(cols)}")
    if not channels:
        raise DataError(f"{path}: no channel columns besides {time_column!r}")
    values = np.empty((len(df), len(channels)), dtype=np.float64)
    for j, c in enumerate(channels):
        col = pd.to_numeric(df[c], errors="coerce")
        bad = col.isna() & df[c].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: row {row + 2}, column {c!r}: {df[c].iloc[row]!r} is not a number")
        values[:, j] = col.to_numpy(dtype=np.float64)
    ts_s = _parse_times(df[time_column], path, time_column)
    if sort and np.any(np.diff(ts_s) < 0):
        order = np.argsort(ts_s, kind="stable")
        ts_s, values = ts_s[order], values[order]
        labels = {k: v[order] for k, v in labels.items()}
    if np.any(np.diff(ts_s) < 0):
        row = int(np.flatnonzero(np.diff(ts_s) < 0)[0]) + 1
        raise DataError(f"{path}: row {row + 2}: time goes backwards ({df[time_column].iloc[row]!r})")
    return SensorTable(path, ts_s, values, list(channels), labels)


def _parse_times(col, path: Path, name: str) -> np.ndarray:
    import pandas as pd  # noqa: PLC0415

    if pd.api.types.is_numeric_dtype(col):
        t = col.to_numpy(dtype=np.float64)
        if np.isnan(t).any():
            raise DataError(f"{path}: row {int(np.flatnonzero(np.isnan(t))[0]) + 2}, column {name!r}: no time")
        return t
    parsed = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(f"{path}: row {row + 2}, column {name!r}: {col.iloc[row]!r} is not a time")
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)


def infer_step(ts_s: np.ndarray) -> float:
    """The typical step between readings: the median positive difference, to 2 significant
    digits (jittered timestamps of a 1 s sensor give 1.0 s, not 0.998 s)."""
    d = np.diff(ts_s)
    d = d[d > 0]
    if not len(d):
        raise DataError("cannot infer the step: all readings have the same time")
    return float(f"{float(np.median(d)):.2g}")


@dataclass
class SensorBatch:
    """Readings of one stream, in time order, as a source yields them."""

    stream: str
    ts_s: np.ndarray
    values: np.ndarray
    end_of_stream: bool = False
    machine: str | None = None


class CsvSensorSource:
    """CSV files replayed as sensor streams, ``chunk_rows`` readings at a time.

    ``realtime`` paces readings by their own timestamps (``speed`` x faster); otherwise as
    fast as possible. Files are played one after another, each its own stream.
    """

    def __init__(self, files: list[Path], *, time_column: str, channels: list[str],
                 chunk_rows: int = 64, realtime: bool = False, speed: float = 1.0) -> None:
        if chunk_rows < 1 or speed <= 0:
            raise ValueError(f"chunk_rows must be >= 1 and speed > 0, got {chunk_rows}, {speed}")
        self.files, self.time_column, self.channels = files, time_column, channels
        self.chunk_rows, self.realtime, self.speed = chunk_rows, realtime, speed
        self.files_done = 0

    def __iter__(self) -> Iterator[SensorBatch]:
        for path in self.files:
            table = read_sensor_csv(path, time_column=self.time_column, channels=self.channels)
            t_wall, t_data = time.monotonic(), table.ts_s[0]
            n = len(table.ts_s)
            for i in range(0, n, self.chunk_rows):
                sl = slice(i, min(i + self.chunk_rows, n))
                if self.realtime:
                    delay = t_wall + (table.ts_s[sl.start] - t_data) / self.speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                yield SensorBatch(table.stream, table.ts_s[sl], table.values[sl],
                                  end_of_stream=sl.stop >= n, machine=path.parent.name or None)
            self.files_done += 1
