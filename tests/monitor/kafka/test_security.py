"""One kafka: section, two clients: the security mapping, the static checks, error classes.

SASL cannot be tested against Tansu 0.6.0 (no way to create the first SCRAM user), so it is
checked here at the option-mapping level and through the error classification; TLS runs for
real in tests/integration/test_kafka_tls.py.
"""
from __future__ import annotations

import os

import pytest

from monitor.config import load_config
from monitor.kafka.connect import KafkaRefused, KafkaUnreachable, classify_client_error, probe
from monitor.kafka.security import kafka_python_options, librdkafka_options, security_problems


def _k(tmp_path, text: str):
    p = tmp_path / "c.yaml"
    p.write_text("kafka:\n" + "".join(f"  {line}\n" for line in text.strip().splitlines()))
    return load_config(p, env={}).kafka


def _pem(tmp_path, name: str) -> str:
    p = tmp_path / name
    p.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return str(p)


def test_both_clients_get_the_same_sasl_ssl_settings(tmp_path):
    ca, cert, key = _pem(tmp_path, "ca.pem"), _pem(tmp_path, "c.pem"), _pem(tmp_path, "c.key")
    k = _k(tmp_path, f"""
security_protocol: SASL_SSL
sasl_mechanism: SCRAM-SHA-512
sasl_username: svc
sasl_password: "0123"
ssl_cafile: {ca}
ssl_certfile: {cert}
ssl_keyfile: {key}
""")
    assert kafka_python_options(k) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "svc",
        "sasl_plain_password": "0123", "ssl_cafile": ca, "ssl_certfile": cert, "ssl_keyfile": key}
    assert librdkafka_options(k) == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "svc",
        "sasl.password": "0123", "ssl.ca.location": ca, "ssl.certificate.location": cert,
        "ssl.key.location": key}
    assert security_problems(k) == []


def test_plaintext_passes_no_security_options(tmp_path):
    k = _k(tmp_path, "bootstrap: b:1")
    assert kafka_python_options(k) == {"security_protocol": "PLAINTEXT"}
    assert librdkafka_options(k) == {"security.protocol": "PLAINTEXT"}


def test_sasl_without_mechanism_and_a_missing_ca_are_named_before_any_connection(tmp_path):
    """Why: SASL_SSL with a missing CA and no mechanism passed check-config, then looked like
    "Kafka is down" forever (librdkafka fell back to GSSAPI; the CA error never reached the log)."""
    k = _k(tmp_path, f"""
security_protocol: SASL_SSL
sasl_username: svc
sasl_password: pw-not-shown
ssl_cafile: {tmp_path / 'missing-ca.pem'}
""")
    problems = security_problems(k)
    assert any(p.startswith("kafka.sasl_mechanism:") and "GSSAPI" in p for p in problems)
    assert any(p.startswith("kafka.ssl_cafile:") and "no such file" in p for p in problems)
    assert not any("pw-not-shown" in p for p in problems)


def test_unreadable_and_non_pem_files_and_half_a_client_certificate(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("hello")
    cert = _pem(tmp_path, "c.pem")
    k = _k(tmp_path, f"security_protocol: SSL\nssl_cafile: {bad}\nssl_certfile: {cert}")
    problems = security_problems(k)
    assert any("not a PEM file" in p for p in problems)
    assert any(p.startswith("kafka.ssl_keyfile:") for p in problems)
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.pem"
        locked.write_text("-----BEGIN X-----")
        locked.chmod(0)
        assert "not readable" in " ".join(security_problems(_k(tmp_path, f"security_protocol: SSL\nssl_cafile: {locked}")))


def test_tls_files_without_tls_are_named(tmp_path):
    k = _k(tmp_path, f"ssl_cafile: {_pem(tmp_path, 'ca.pem')}\nsasl_mechanism: PLAIN")
    problems = security_problems(k)
    assert any("does not use TLS" in p for p in problems) and any("does not use SASL" in p for p in problems)


@pytest.mark.parametrize("text, kind", [
    ("SaslAuthenticationFailedError: [SASL Authentication failed]", "auth"),
    ("KafkaError{code=_AUTHENTICATION,val=-169,str=\"SASL authentication error: Authentication failed\"}", "auth"),
    ("No provider for SASL mechanism GSSAPI: recompile librdkafka with libsasl2", "auth"),
    ("_SSL ssl.ca.location failed: error:80000002:system library::No such file or directory", "tls"),
    ("SSL handshake failed: error:0A000086:SSL routines::certificate verify failed", "tls"),
    ("_TRANSPORT Connect to ipv4#127.0.0.1:1 failed: Connection refused", "transient"),
    ("NoBrokersAvailable", "transient"),
])
def test_client_errors_are_classified(text, kind):
    assert classify_client_error(text) == kind


def test_probe_says_why_nothing_answers(tmp_path):
    from monitor.kafka.broker import free_port

    k = _k(tmp_path, f'bootstrap: "127.0.0.1:{free_port()}"')
    with pytest.raises(KafkaUnreachable, match="connection refused"):
        probe(k, timeout=2)
    k = _k(tmp_path, 'bootstrap: "no-such-host.invalid:9092"')
    with pytest.raises(KafkaUnreachable, match="host name not found"):
        probe(k, timeout=2)
    k = _k(tmp_path, 'bootstrap: "nonsense"')
    with pytest.raises(KafkaRefused, match="not host:port"):
        probe(k, timeout=2)
