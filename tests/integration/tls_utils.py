"""A real TLS endpoint for the ``kafka`` tests: test certificates (openssl CLI) and stunnel4
terminating TLS in front of a Tansu broker (Tansu 0.6.0 cannot take --cert and --key together).

Tansu must advertise the stunnel address, since clients connect to the advertised listener after
bootstrapping; so each TLS mode gets its own broker.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.kafka.broker import Broker, free_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(cwd: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.pem", "-days", "2", "-subj", f"/CN={name}", cwd=cwd)


def _signed(cwd: Path, name: str, ca: str, *, san: str | None) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}", cwd=cwd)
    extra = []
    if san:
        (cwd / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", f"{name}.ext"]
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *extra, cwd=cwd)


@dataclass
class Pki:
    """ca (the one the clients trust), server (signed by ca), client (signed by ca), other-ca
    (a CA nobody trusts) and rogue (a client certificate signed by other-ca)."""

    root: Path

    def __getitem__(self, name: str) -> Path:
        return self.root / name


def make_pki(root: Path) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (apt-get install openssl)")
    root.mkdir(parents=True, exist_ok=True)
    _ca(root, "ca")
    _ca(root, "other-ca")
    _signed(root, "server", "ca", san="DNS:localhost,IP:127.0.0.1")
    _signed(root, "client", "ca", san=None)
    _signed(root, "rogue", "other-ca", san=None)
    return Pki(root)


def stunnel_binary() -> str:
    path = shutil.which("stunnel4") or shutil.which("stunnel")
    if path is None:
        pytest.skip("stunnel4 is not installed (apt-get install stunnel4; .ci/run installs it)")
    return path


class Stunnel:
    """stunnel accepting TLS on ``port`` and forwarding plaintext to ``target``; with
    ``mutual`` it requires a client certificate signed by the test CA."""

    def __init__(self, pki: Pki, *, target: int, port: int | None = None, mutual: bool = False,
                 workdir: Path) -> None:
        self.port = port or free_port()
        verify = "yes" if mutual else "no"
        self.conf = workdir / f"stunnel-{self.port}.conf"
        self.log = workdir / f"stunnel-{self.port}.log"
        self.conf.write_text(
            "foreground = yes\npid =\n[kafka]\n"
            f"accept = 127.0.0.1:{self.port}\nconnect = 127.0.0.1:{target}\n"
            f"cert = {pki['server.pem']}\nkey = {pki['server.key']}\nCAfile = {pki['ca.pem']}\n"
            f"verifyChain = {verify}\nrequireCert = {verify}\n")
        self.proc = subprocess.Popen([stunnel_binary(), str(self.conf)], stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        import socket

        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"stunnel did not start: {self.log.read_text()[-500:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@dataclass
class Endpoint:
    """A Kafka endpoint: the bootstrap address and the kafka: lines a config needs for it."""

    bootstrap: str
    kafka_lines: list[str]
    broker: Broker
    tunnel: Stunnel | None

    def options(self) -> dict:
        from monitor.config import load_config
        from monitor.kafka.security import kafka_python_options

        overrides = [f"kafka.{line.strip().replace(': ', '=', 1)}" for line in self.kafka_lines]
        return kafka_python_options(load_config(None, env={}, overrides=overrides).kafka)

    def stop(self) -> None:
        if self.tunnel is not None:
            self.tunnel.stop()
        self.broker.stop()


def tls_lines(pki: Pki, *, mutual: bool, ca: str = "ca.pem", client: str | None = "client") -> list[str]:
    lines = ["security_protocol: SSL", f"ssl_cafile: {pki[ca]}"]
    if mutual and client:
        lines += [f"ssl_certfile: {pki[client + '.pem']}", f"ssl_keyfile: {pki[client + '.key']}"]
    return lines


def start_endpoint(pki: Pki, mode: str, workdir: Path) -> Endpoint:
    """``plain``, ``tls`` or ``mtls``: a Tansu broker, behind stunnel for the TLS modes."""
    if mode == "plain":
        b = Broker(log_file=workdir / "broker-plain.log").start()
        return Endpoint(b.bootstrap, [], b, None)
    stunnel_binary()
    port = free_port()
    b = Broker(advertised=f"localhost:{port}", log_file=workdir / f"broker-{mode}.log").start()
    tunnel = Stunnel(pki, target=b.port, port=port, mutual=mode == "mtls", workdir=workdir)
    return Endpoint(f"localhost:{port}", tls_lines(pki, mutual=mode == "mtls"), b, tunnel)
