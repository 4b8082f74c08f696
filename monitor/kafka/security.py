"""One ``kafka:`` section, two clients: the security options of kafka-python and of librdkafka.

The service's consumer may be librdkafka (confluent-kafka) while its producer, ``monitor
produce``, ``monitor events`` and the demo use kafka-python; both must see the same protocol,
CA, client certificate and SASL login, so the mapping lives here once. ``security_problems``
is the static check (``check-config`` and the start of ``run``): what can be known wrong
without a broker.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
SSL_PROTOCOLS = ("SSL", "SASL_SSL")
#: (our key, kafka-python's option, librdkafka's property)
SSL_FILES = (("ssl_cafile", "ssl_cafile", "ssl.ca.location"),
             ("ssl_certfile", "ssl_certfile", "ssl.certificate.location"),
             ("ssl_keyfile", "ssl_keyfile", "ssl.key.location"))


def kafka_python_options(k: Any) -> dict[str, Any]:
    """Security keyword arguments for any kafka-python client (consumer, producer, admin)."""
    out: dict[str, Any] = {"security_protocol": k.security_protocol}
    if k.security_protocol in SASL_PROTOCOLS:
        out.update(sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_username,
                   sasl_plain_password=k.sasl_password)
    if k.security_protocol in SSL_PROTOCOLS:
        for ours, theirs, _ in SSL_FILES:
            if getattr(k, ours):
                out[theirs] = getattr(k, ours)
    return out


def librdkafka_options(k: Any) -> dict[str, Any]:
    """The same settings as librdkafka configuration properties."""
    out: dict[str, Any] = {"security.protocol": k.security_protocol}
    if k.security_protocol in SASL_PROTOCOLS:
        out.update({"sasl.mechanism": k.sasl_mechanism, "sasl.username": k.sasl_username,
                    "sasl.password": k.sasl_password})
    if k.security_protocol in SSL_PROTOCOLS:
        for ours, _, theirs in SSL_FILES:
            if getattr(k, ours):
                out[theirs] = getattr(k, ours)
    return out


def security_problems(k: Any) -> list[str]:
    """What is wrong with the security settings, one line each, naming the key (never a secret)."""
    problems = []
    proto = k.security_protocol
    if proto in SASL_PROTOCOLS:
        if not k.sasl_mechanism:
            problems.append(f"kafka.sasl_mechanism: security_protocol {proto} needs a mechanism "
                            "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512); without one librdkafka "
                            "falls back to GSSAPI (Kerberos)")
        if not k.sasl_username:
            problems.append(f"kafka.sasl_username: security_protocol {proto} needs a user name")
        if not k.sasl_password:
            problems.append(f"kafka.sasl_password: security_protocol {proto} needs a password "
                            "(set it in the file or in MONITOR__KAFKA__SASL_PASSWORD)")
    elif k.sasl_mechanism:
        problems.append(f"kafka.sasl_mechanism is set but security_protocol {proto} does not use "
                        "SASL (SASL_PLAINTEXT or SASL_SSL)")
    if proto in SSL_PROTOCOLS:
        for ours, _, _ in SSL_FILES:
            path = getattr(k, ours)
            if path:
                problem = _file_problem(Path(path))
                if problem:
                    problems.append(f"kafka.{ours}: {path}: {problem}")
        if bool(k.ssl_certfile) != bool(k.ssl_keyfile):
            have, miss = ("ssl_certfile", "ssl_keyfile") if k.ssl_certfile else ("ssl_keyfile", "ssl_certfile")
            problems.append(f"kafka.{miss}: a client certificate needs both files (kafka.{have} is set)")
    else:
        given = [ours for ours, _, _ in SSL_FILES if getattr(k, ours)]
        if given:
            problems.append(f"kafka.{given[0]} is set but security_protocol {proto} does not use TLS "
                            "(SSL or SASL_SSL)")
    return problems


def _file_problem(path: Path) -> str | None:
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a file"
    if not os.access(path, os.R_OK):
        return "not readable by this user"
    try:
        head = path.read_bytes()[:65536]
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if b"-----BEGIN " not in head:
        return "not a PEM file (no '-----BEGIN' line)"
    return None
