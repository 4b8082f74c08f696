"""Can we talk to Kafka, and if not, why: a probe that names the cause, and the error classes.

Kafka clients report a wrong CA, a missing client certificate and a broker that is down the same
way: "not connected yet", retried forever. Before any client is made, ``probe`` opens a real
connection to each bootstrap server with the configured TLS settings and sends one Kafka request
(ApiVersions), so the cause is known and said in one line:

- ``KafkaUnreachable``: nothing answers (refused, timed out, name unknown, the TLS endpoint is up
  but the broker behind it is not). Worth retrying; a CLI exits with ``EXIT_UNAVAILABLE``.
- ``KafkaRefused``: the server answered and refused us (certificate not trusted, client
  certificate required or not trusted, authentication failed). Retrying cannot help: exit 2.

A server that verifies client certificates under TLS 1.3 judges ours only after our side of the
handshake is done, and stunnel then just closes the socket: an EOF, like a broker that is down
behind it. The probe then repeats the handshake capped at TLS 1.2, where the server decides
before the handshake ends: failing there means our certificate (or its absence) was refused.
"""
from __future__ import annotations

import socket
import ssl
import struct
from typing import Any

from monitor.errors import MonitorError
from monitor.kafka.security import SSL_PROTOCOLS

#: sysexits' EX_UNAVAILABLE: a service we need is not there (distinct from 2, a config error)
EXIT_UNAVAILABLE = 69


class KafkaUnreachable(MonitorError):
    """No bootstrap server answered a Kafka request; the message says why for each."""

    exit_code = EXIT_UNAVAILABLE


class KafkaRefused(MonitorError):
    """The server answered and refused our TLS or SASL credentials: retrying cannot help."""

    exit_code = 2


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for hp in bootstrap.split(","):
        host, _, port = hp.strip().rpartition(":")
        try:
            out.append((host or "localhost", int(port)))
        except ValueError:
            raise KafkaRefused(f"kafka.bootstrap: {hp.strip()!r} is not host:port") from None
    return out


def probe(k: Any, *, timeout: float = 5.0) -> str:
    """Return the first bootstrap ``host:port`` that answers a Kafka request; else raise.

    ``KafkaRefused`` wins over ``KafkaUnreachable`` when the servers disagree: one refusal
    is a settings problem even if another server is down.
    """
    unreachable = []
    refused = None
    for host, port in _hosts(k.bootstrap):
        try:
            _probe_one(host, port, k, timeout)
            return f"{host}:{port}"
        except KafkaRefused as exc:
            refused = refused or exc
        except KafkaUnreachable as exc:
            unreachable.append(str(exc))
    if refused is not None:
        raise refused
    raise KafkaUnreachable("; ".join(unreachable))


def _context(k: Any, *, tls12: bool = False) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=k.ssl_cafile or None)
        if k.ssl_certfile:
            ctx.load_cert_chain(k.ssl_certfile, k.ssl_keyfile or None)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaRefused(f"kafka TLS files cannot be used ({_short(exc)}): check kafka.ssl_cafile, "
                           "kafka.ssl_certfile and kafka.ssl_keyfile") from None
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _api_versions_request() -> bytes:
    client_id = b"monitor-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id  # ApiVersions v0
    return struct.pack(">i", len(body)) + body


def _exchange(sock) -> None:
    """One ApiVersions round trip: the server speaks Kafka (or closes on us)."""
    sock.sendall(_api_versions_request())
    head = sock.recv(4)
    if len(head) < 4:
        raise EOFError("closed the connection without answering")
    (size,) = struct.unpack(">i", head)
    if not 0 < size < 1 << 24:
        raise ValueError(f"answered with something that is not a Kafka response (first bytes "
                         f"{head.hex()}); is security_protocol right?")


def _probe_one(host: str, port: int, k: Any, timeout: float) -> None:
    where = f"{host}:{port}"
    use_tls = k.security_protocol in SSL_PROTOCOLS
    ctx = _context(k) if use_tls else None
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise KafkaUnreachable(f"{where}: host name not found ({exc.strerror})") from None
    except TimeoutError:
        raise KafkaUnreachable(f"{where}: no answer within {timeout:.0f} s (connect timed out)") from None
    except OSError as exc:
        raise KafkaUnreachable(f"{where}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        if ctx is None:
            _exchange(raw)
            return
        try:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                _exchange(tls)
            return
        except ssl.SSLCertVerificationError as exc:
            raise KafkaRefused(f"{where}: TLS handshake failed: the server's certificate is not "
                               f"trusted ({exc.verify_message}); check kafka.ssl_cafile") from None
        except ssl.SSLError as exc:
            if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                raise EOFError("closed the TLS connection") from None
            raise KafkaRefused(f"{where}: TLS handshake refused by the server: {_alert(exc, k)}") from None
    except (EOFError, ConnectionResetError, BrokenPipeError) as exc:
        if use_tls:
            _tell_closed_tls(host, port, k, timeout, str(exc))
        raise KafkaUnreachable(f"{where}: {exc}") from None
    except TimeoutError:
        raise KafkaUnreachable(f"{where}: connected, but no Kafka answer within {timeout:.0f} s") from None
    except ValueError as exc:
        raise KafkaRefused(f"{where}: {exc}") from None
    finally:
        raw.close()


def _tell_closed_tls(host: str, port: int, k: Any, timeout: float, what: str) -> None:
    """The TLS server closed on us: our client certificate refused, or nothing behind it?"""
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with _context(k, tls12=True).wrap_socket(raw, server_hostname=host):
                pass  # handshake done: the server accepted us, so the broker behind it is away
    except ssl.SSLError as exc:
        reason = exc.reason or ""
        if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) or "ALERT" in reason:
            # the first handshake got through, so what the server refuses is our certificate;
            # TLS 1.2 may say why in its alert (a stunnel without a client certificate sends a
            # plain handshake_failure, so only the certificate alerts are taken at their word)
            said = next((_ALERTS[code] for code in _CERT_ALERTS if code in reason), "")
            mine = (f"the client certificate kafka.ssl_certfile ({k.ssl_certfile}) was refused"
                    + (f": {said} ({reason.lower()})" if said else "")
                    if k.ssl_certfile else "it requires a client certificate (kafka.ssl_certfile and "
                    "kafka.ssl_keyfile are not set)")
            raise KafkaRefused(f"{where}: TLS handshake refused by the server: {mine}") from None
    except (OSError, EOFError):
        pass
    raise KafkaUnreachable(f"{where}: the TLS endpoint accepted us but {what} before a Kafka "
                           "answer (is the broker behind it down?)") from None


_ALERTS = {
    "CERTIFICATE_REQUIRED": "it requires a client certificate",
    "UNKNOWN_CA": "it does not trust the client certificate's CA",
    "BAD_CERTIFICATE": "it rejected the client certificate",
    "CERTIFICATE_EXPIRED": "the client certificate has expired",
    "CERTIFICATE_REVOKED": "the client certificate was revoked",
    "PROTOCOL_VERSION": "no TLS version in common",
    "HANDSHAKE_FAILURE": "no cipher or certificate in common",
}


_CERT_ALERTS = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED")


def _alert(exc: ssl.SSLError, k: Any) -> str:
    reason = exc.reason or _short(exc)
    for code, text in _ALERTS.items():
        if code in reason:
            if code in ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE") and not k.ssl_certfile:
                text += " (kafka.ssl_certfile is not set)"
            return f"{text} ({reason.lower()})"
    return reason.lower()


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text.split(" (_ssl.c")[0] if text else type(exc).__name__


def classify_client_error(exc: BaseException | str) -> str:
    """``auth``, ``tls`` or ``transient`` for an error a Kafka client raised or reported."""
    name = type(exc).__name__ if isinstance(exc, BaseException) else ""
    text = f"{name} {exc}"
    if any(s in text for s in ("SaslAuthenticationFailed", "_AUTHENTICATION", "Authentication failed",
                               "UnsupportedSaslMechanism", "No provider for SASL mechanism",
                               "SASL authentication error")):
        return "auth"
    if any(s in text for s in ("_SSL", "SSL handshake failed", "certificate verify failed",
                               "CERTIFICATE_VERIFY_FAILED", "ssl.ca.location", "ssl.key.location",
                               "ssl.certificate.location")):
        return "tls"
    return "transient"


def check_connection(k: Any, *, timeout: float = 10.0) -> str:
    """``probe``, then a kafka-python client lists the topics (SASL login and authorisation)."""
    where = probe(k, timeout=min(timeout, 5.0))
    from kafka.admin import KafkaAdminClient  # noqa: PLC0415
    from kafka.errors import KafkaError  # noqa: PLC0415

    from monitor.kafka.security import kafka_python_options  # noqa: PLC0415

    try:
        admin = KafkaAdminClient(bootstrap_servers=k.bootstrap.split(","), client_id="monitor-check",
                                 request_timeout_ms=int(timeout * 1000), **kafka_python_options(k))
        try:
            topics = set(admin.list_topics())
        finally:
            admin.close()
    except KafkaError as exc:
        if classify_client_error(exc) == "transient":
            raise KafkaUnreachable(f"{k.bootstrap}: {type(exc).__name__}: {exc}") from None
        raise KafkaRefused(f"{k.bootstrap}: refused: {type(exc).__name__}: {exc}") from None
    wanted = [t for t in (k.audio_topic, k.sensor_topic, k.events_topic, k.dead_letter_topic) if t]
    missing = [t for t in wanted if t not in topics]
    note = f"; topics not there yet: {', '.join(missing)}" if missing else ""
    return f"connected to {where} ({k.security_protocol}){note}"
