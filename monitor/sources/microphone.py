"""A live microphone (PortAudio through ``sounddevice``) as a stream of ``AudioChunk``s.

The PortAudio callback runs on a real-time audio thread: it only copies the block and its
capture time into a bounded queue, never scores, logs or allocates beyond the copy. When the
queue is full (the scorer fell behind) the block is dropped and counted; PortAudio's own
overflow flag is counted too. The consumer side places every block on the capture's sample
grid (sample 0 = the first captured sample), so a lost block shows up as a jump of
``start_sample``, which the driver reports as an ``input-dropout`` event and never scores
across. When the device cannot open the model's rate, it is opened at its default rate and
resampled (one log line says so).

``sounddevice`` is imported lazily, when a microphone is opened or listed: without PortAudio
everything but ``monitor listen`` / ``monitor devices`` works, and those two say what to install.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from monitor.errors import MonitorError
from workers.resample import StreamResampler

from monitor.sources.base import AudioChunk, CaptureStats

log = logging.getLogger(__name__)

INSTALL_HINT = ("install PortAudio: `apt-get install libportaudio2` (Debian/Ubuntu), "
                "`dnf install portaudio` (Fedora), `brew install portaudio` (macOS)")


class MicrophoneError(MonitorError):
    """No usable audio input: PortAudio missing, no devices, or a device that cannot record."""


def import_sounddevice():
    """``sounddevice``, or a ``MicrophoneError`` that says what to install."""
    try:
        import sounddevice  # noqa: PLC0415
    except ImportError as exc:
        raise MicrophoneError(f"the microphone needs the Python package sounddevice "
                              f"({exc}); install it: pip install sounddevice") from None
    except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise MicrophoneError(f"the microphone needs the PortAudio library ({exc}); "
                              f"{INSTALL_HINT}") from None
    return sounddevice


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    hostapi: str
    channels: int
    default_rate: float
    is_default: bool = False

    def label(self) -> str:
        return f"{self.index} {self.name!r} ({self.hostapi})"


def list_devices(sd=None, *, include_output_only: bool = False) -> list[InputDevice]:
    """PortAudio's devices that can record (all devices with ``include_output_only``)."""
    sd = sd or import_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except Exception as exc:  # PortAudioError: the host API itself failed
        raise MicrophoneError(f"cannot list audio devices: {exc}") from None
    out = []
    for d in devices:
        if d["max_input_channels"] < 1 and not include_output_only:
            continue
        out.append(InputDevice(index=d["index"], name=d["name"],
                               hostapi=hostapis[d["hostapi"]]["name"],
                               channels=int(d["max_input_channels"]),
                               default_rate=float(d["default_samplerate"]),
                               is_default=d["index"] == default_in))
    return out


def resolve_device(spec: int | str | None, sd=None) -> InputDevice:
    """A device by index, exact name or case-insensitive name substring (None = the default)."""
    sd = sd or import_sounddevice()
    every = list_devices(sd, include_output_only=True)
    inputs = [d for d in every if d.channels > 0]
    if not inputs:
        hint = (" (PortAudio sees no devices at all)" if not every else
                f" (devices without input: {', '.join(d.label() for d in every)})")
        raise MicrophoneError(f"no audio input devices found{hint}; connect a microphone, or check "
                              "that the sound server is reachable (PULSE_SERVER) and that this user "
                              "may use the sound devices")
    known = "input devices: " + "; ".join(f"{d.label()} {d.channels} ch" for d in inputs)
    if spec is None or spec == "":
        default = [d for d in inputs if d.is_default]
        return default[0] if default else inputs[0]
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        idx = int(spec)
        match = [d for d in every if d.index == idx]
        if not match:
            raise MicrophoneError(f"audio device {idx} does not exist; {known}")
        dev = match[0]
    else:
        exact = [d for d in every if d.name == spec]
        sub = exact or [d for d in every if spec.lower() in d.name.lower()]
        if not sub:
            raise MicrophoneError(f"no audio device matches {spec!r}; {known}")
        with_input = [d for d in sub if d.channels > 0]
        if len(with_input) > 1 and not exact:
            raise MicrophoneError(f"{spec!r} matches several input devices: "
                                  f"{', '.join(d.label() for d in with_input)}; give an index or a longer name")
        dev = with_input[0] if with_input else sub[0]
    if dev.channels < 1:
        raise MicrophoneError(f"audio device {dev.label()} has no input channels (output only); {known}")
    return dev


class MicrophoneSource:
    """Iterate to get ``AudioChunk``s of one live stream until ``stop()`` (or ``max_samples``).

    ``sample_rate`` is the model's; ``device`` an index, a name (substring) or None for the
    default input; ``block_ms`` the PortAudio block (also the chunk) length; ``queue_s`` how
    much audio may wait for the scorer before blocks are dropped. ``dtype`` ``int16`` records
    16-bit samples (scaled by 1/32768 exactly like a 16-bit WAV read by soundfile).
    """

    #: what ``monitor listen`` passes besides the settings every live source takes
    listen_options = ("device", "capture_rate")

    def __init__(self, *, sample_rate: int, device: int | str | None = None, channels: int = 1,
                 stream: str = "mic", machine: str | None = None, block_ms: float = 100.0,
                 queue_s: float = 10.0, dtype: str = "int16", capture_rate: int | None = None,
                 max_samples: int | None = None) -> None:
        if block_ms <= 0 or queue_s <= 0:
            raise ValueError(f"block_ms and queue_s must be positive, got {block_ms}, {queue_s}")
        if dtype not in ("int16", "float32"):
            raise ValueError(f"dtype must be int16 or float32, got {dtype!r}")
        self.sample_rate, self.device_spec, self.channels = sample_rate, device, channels
        self.stream_name, self.machine, self.block_ms = stream, machine, block_ms
        self.queue_s, self.dtype, self.capture_rate = queue_s, dtype, capture_rate
        self.max_samples = max_samples
        self.stats = CaptureStats()
        self.device: InputDevice | None = None
        self.rate = sample_rate  # the rate the device actually runs at
        self._q: queue.Queue | None = None
        self._stream = None
        self._stop = threading.Event()
        self._resampler: StreamResampler | None = None
        self._next_in = 0  # next device-rate sample index the callback expects
        self._last_adc_end: float | None = None
        self.time_origin_s: float | None = None
        self.device_channels = channels

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> "MicrophoneSource":
        sd = import_sounddevice()
        dev = resolve_device(self.device_spec, sd)
        self.device = dev
        ch = min(self.channels, dev.channels)
        rate = self.capture_rate or self.sample_rate
        if self.capture_rate is None:
            try:
                sd.check_input_settings(device=dev.index, channels=ch, dtype=self.dtype, samplerate=rate)
            except Exception as exc:  # PortAudioError / ValueError: rate not supported
                rate = int(round(dev.default_rate))
                log.warning("device %s cannot record at %d Hz (%s); recording at %d Hz and "
                            "resampling to %d Hz", dev.label(), self.sample_rate,
                            str(exc).strip()[:100], rate, self.sample_rate,
                            extra={"device": dev.name, "device_rate": rate, "model_rate": self.sample_rate})
        elif rate != self.sample_rate:
            log.warning("recording at %d Hz as asked and resampling to %d Hz", rate, self.sample_rate,
                        extra={"device": dev.name, "device_rate": rate, "model_rate": self.sample_rate})
        self._prepare(rate=rate, channels=ch)
        block = max(1, round(rate * self.block_ms / 1000))
        try:
            self._stream = sd.InputStream(device=dev.index, samplerate=rate, channels=ch,
                                          dtype=self.dtype, blocksize=block, latency="low",
                                          callback=self._callback)
            self._stream.start()
        except Exception as exc:  # PortAudioError with the host's reason
            self._stream = None
            raise MicrophoneError(f"cannot record from audio device {dev.label()} at {rate} Hz, "
                                  f"{ch} channel(s): {str(exc).strip()}") from None
        log.info("microphone open", extra={"device": dev.name, "device_index": dev.index,
                                           "rate": rate, "channels": ch, "block": block,
                                           "latency_s": round(float(self._stream.latency), 4)})
        return self

    def _prepare(self, *, rate: int, channels: int) -> None:
        """Queue and resampler for a capture at ``rate`` (before the callback may run)."""
        self.rate = rate
        self.device_channels = channels
        self._resampler = StreamResampler(sr_in=rate, sr_out=self.sample_rate) if rate != self.sample_rate else None
        self._q = queue.Queue(maxsize=max(2, math.ceil(self.queue_s * 1000 / self.block_ms)))
        self._next_in = 0
        self._last_adc_end = None

    def stop(self) -> None:
        """Ask the reader to end (safe from a signal handler or another thread)."""
        self._stop.set()

    def close(self, *, timeout_s: float = 5.0) -> None:
        """Stop capturing. ``abort`` (drop what the device still buffers) rather than ``stop``
        (wait for it), in a helper thread bounded by ``timeout_s``: the run's results are
        flushed before this, so a device that does not return from closing (a wedged sound
        server) must not keep the process from exiting; it is left to the OS at exit."""
        self._stop.set()
        stream, self._stream = self._stream, None
        if stream is None:
            return

        def shut() -> None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001 - closing a dead device must not hide the real error
                log.debug("closing the input stream failed", exc_info=True)

        closer = threading.Thread(target=shut, name="mic-close", daemon=True)
        closer.start()
        closer.join(timeout_s)
        if closer.is_alive():
            log.warning("the audio device did not close within %.0f s; leaving it to the OS",
                        timeout_s, extra={"device": self.device.name if self.device else None})

    def __enter__(self) -> "MicrophoneSource":
        return self.open() if self._stream is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the real-time callback: copy and enqueue, nothing else ------------------------------
    def _callback(self, indata, frames, time_info, status) -> None:
        if self._stop.is_set():  # stopping: the reader drains what is queued, nothing more
            return
        now = time.time()
        adc = time_info.inputBufferAdcTime
        cur = time_info.currentTime
        # Capture time (epoch s) of the block's first sample: the stream clock mapped to ours.
        cap = now - (cur - adc) if adc and cur else now - frames / self.rate
        start = self._next_in
        if status.input_overflow:
            self.stats.overflows += 1
            if self._last_adc_end is not None and adc:  # samples lost before this block,
                lost = round((adc - self._last_adc_end) * self.rate)  # on the device's clock
                if lost > 0:
                    self.stats.lost_samples += lost
                    start += lost
        self._next_in = start + frames
        self._last_adc_end = adc + frames / self.rate if adc else None
        self.stats.blocks += 1
        self.stats.samples += frames
        try:
            self._q.put_nowait((start, indata.copy(), cap))
        except queue.Full:
            self.stats.dropped_blocks += 1
            self.stats.dropped_samples += frames

    # -- the reader ------------------------------------------------------------------------
    def _to_float(self, block: np.ndarray) -> np.ndarray:
        x = block[:, 0] if block.ndim == 2 else block
        if self.dtype == "int16":
            return x.astype(np.float32) * np.float32(1.0 / 32768.0)
        return np.ascontiguousarray(x, dtype=np.float32)

    def __iter__(self) -> Iterator[AudioChunk]:
        if self._stream is None:
            self.open()
        try:
            yield from self.chunks()
        finally:
            self.close()

    def chunks(self) -> Iterator[AudioChunk]:
        """The queued blocks as chunks, until ``stop()`` and the queue is drained."""
        if self.device_channels > 1:
            log.info("device records %d channels; using channel 0", self.device_channels)
        out_pos = 0  # model-rate index of the next sample we emit
        expected_in = 0
        while True:
            try:
                start_in, block, cap = self._q.get(timeout=0.05)
            except queue.Empty:
                if self._stop.is_set():
                    break
                continue
            if self.time_origin_s is None:
                self.time_origin_s = cap - start_in / self.rate
            x = self._to_float(block)
            if self._resampler is None:
                out_pos = start_in
            elif start_in != expected_in:
                # A gap (dropped block or device overflow): resample afresh after it.
                tail = self._resampler.flush()
                if len(tail):
                    yield self._chunk(tail, out_pos, None)
                self._resampler = StreamResampler(sr_in=self.rate, sr_out=self.sample_rate)
                out_pos = -(-start_in * self.sample_rate // self.rate)
            expected_in = start_in + len(block)
            y = self._resampler.push(x) if self._resampler is not None else x
            if self.max_samples is not None and out_pos + len(y) >= self.max_samples:
                y = y[: max(0, self.max_samples - out_pos)]
                self._stop.set()
            if len(y):
                # capture time of the chunk's first sample, from its block's ADC time
                yield self._chunk(y, out_pos, cap + out_pos / self.sample_rate - start_in / self.rate)
                out_pos += len(y)
            if self.max_samples is not None and out_pos >= self.max_samples:
                break

    def _chunk(self, y: np.ndarray, start: int, cap: float | None) -> AudioChunk:
        return AudioChunk(self.stream_name, y, self.sample_rate, start, machine=self.machine,
                          time_origin_s=self.time_origin_s or 0.0, capture_time_s=cap)

    def pending(self) -> int:
        """Blocks waiting in the queue (a growing number means the scorer falls behind)."""
        return self._q.qsize() if self._q is not None else 0
