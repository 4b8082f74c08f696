"""Service config: unknown keys and bad values are named by path; overrides; secrets masked."""
from __future__ import annotations

import pytest

from monitor.config import dump, load_config
from monitor.kafka.security import kafka_python_options
from monitor.errors import ConfigError


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_file_env_and_set_in_order(tmp_path):
    p = _write(tmp_path, "kafka:\n  bootstrap: a:1\n  group_id: g\nmodels:\n  - streams: 'line3/*'\n    model: m\n"
                         "service:\n  max_batch: 64\n")
    cfg = load_config(p, env={"MONITOR__KAFKA__GROUP_ID": "from-env", "MONITOR__SERVICE__MAX_WAIT_MS": "50",
                              "OTHER": "x"}, overrides=["service.max_wait_ms=7", "sinks.stdout=true"])
    assert cfg.kafka.bootstrap == "a:1" and cfg.kafka.group_id == "from-env"
    assert cfg.service.max_batch == 64 and cfg.service.max_wait_ms == 7 and cfg.sinks.stdout is True
    assert cfg.models[0].streams == "line3/*" and cfg.models[0].threshold is None
    assert cfg.alerting.k == 2  # default kept


@pytest.mark.parametrize("text, needle", [
    ("kafka:\n  bootstrapp: x\n", "kafka.bootstrapp"),
    ("servise: {}\n", "unknown key servise"),
    ("service:\n  max_batch: 0\n", "service.max_batch"),
    ("service:\n  max_batch: lots\n", "service.max_batch"),
    ("kafka:\n  auto_offset_reset: middle\n", "kafka.auto_offset_reset"),
    ("models:\n  - streams: x\n    modle: m\n", "models[0].modle"),
    ("models:\n  - streams: x\n", "models[0]"),
    ("alerting:\n  k: 4\n  n: 3\n", "alerting.k"),
    ("kafka:\n  session_timeout_ms: 3000\n  heartbeat_interval_ms: 2000\n", "heartbeat_interval_ms"),
    ("- a\n- b\n", "top level"),
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
])
def test_bad_config_names_the_key(tmp_path, text, needle):
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, text), env={})
    assert needle in str(e.value) and str(tmp_path) in str(e.value)


def test_bad_override_is_named():
    with pytest.raises(ConfigError, match="service.nope"):
        load_config(None, env={}, overrides=["service.nope=1"])
    with pytest.raises(ConfigError, match="MONITOR__KAFKA__MAX_POLL_RECORDS|kafka.max_poll_records"):
        load_config(None, env={"MONITOR__KAFKA__MAX_POLL_RECORDS": "-5"})


def test_secrets_masked_but_passed_to_the_client(tmp_path):
    p = _write(tmp_path, "kafka:\n  security_protocol: SASL_SSL\n  sasl_mechanism: PLAIN\n"
                         "  sasl_username: svc\n  sasl_password: s3cret-value\n")
    cfg = load_config(p, env={})
    text = dump(cfg)
    assert "s3cret-value" not in text and "***" in text and "svc" in text
    opts = kafka_python_options(cfg.kafka)
    assert opts["sasl_plain_password"] == "s3cret-value" and opts["security_protocol"] == "SASL_SSL"


def test_shipped_configs_load(monkeypatch):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    shipped = sorted(root.glob("*.yaml"))
    assert {"edge.yaml", "demo.yaml"} <= {p.name for p in shipped}
    for path in shipped:
        load_config(path, env={})


def test_librdkafka_gets_the_same_settings_as_kafka_python(tmp_path):
    """``kafka.client: confluent`` maps every consumer and security setting to librdkafka's name."""
    from monitor.kafka.consumer import _librdkafka_options, resolve_client

    p = tmp_path / "c.yaml"
    p.write_text("kafka:\n  bootstrap: b1:9092,b2:9092\n  group_id: g\n  client: confluent\n"
                 "  security_protocol: SASL_SSL\n  sasl_mechanism: SCRAM-SHA-512\n  sasl_username: u\n"
                 "  sasl_password: s3cret\n  ssl_cafile: /etc/ca.pem\n  fetch_max_wait_ms: 20\n")
    k = load_config(p).kafka
    conf = _librdkafka_options(k, "worker-0")
    assert conf["bootstrap.servers"] == "b1:9092,b2:9092" and conf["group.id"] == "g"
    assert conf["enable.auto.commit"] is False and conf["fetch.wait.max.ms"] == 20
    assert (conf["security.protocol"], conf["sasl.mechanism"], conf["sasl.username"], conf["sasl.password"],
            conf["ssl.ca.location"]) == ("SASL_SSL", "SCRAM-SHA-512", "u", "s3cret", "/etc/ca.pem")
    assert resolve_client("kafka-python") == "kafka-python" and resolve_client("confluent") == "confluent"
    assert resolve_client("auto") in ("confluent", "kafka-python")
