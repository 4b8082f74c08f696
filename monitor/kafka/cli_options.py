"""The ``kafka:`` section for commands other than ``run``: ``--config FILE`` and/or flags.

``monitor produce``, ``monitor events`` and ``monitor demo`` reach the same Kafka as the service
with the same settings, read from the service's config file (and its env overrides), with flags
for the common keys on top. There is deliberately no password flag: a command line is visible
to every user of the machine (``ps``), so a SASL password comes from the file or from
``MONITOR__KAFKA__SASL_PASSWORD``.
"""
from __future__ import annotations

import argparse
from typing import Any

from monitor.errors import ConfigError
from monitor.kafka.connect import probe
from monitor.kafka.security import kafka_python_options, security_problems

#: flag -> kafka.<key>
FLAGS = {"--bootstrap": "bootstrap", "--security-protocol": "security_protocol",
         "--ssl-cafile": "ssl_cafile", "--ssl-certfile": "ssl_certfile", "--ssl-keyfile": "ssl_keyfile",
         "--sasl-mechanism": "sasl_mechanism", "--sasl-username": "sasl_username"}


def add_kafka_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Kafka connection", "defaults: the kafka: section of --config, then the "
                             "MONITOR__KAFKA__* environment; a SASL password only from those two")
    g.add_argument("--config", metavar="FILE.yaml", help="service config whose kafka: section to use")
    g.add_argument("--bootstrap", metavar="HOST:PORT[,HOST:PORT]")
    g.add_argument("--security-protocol", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    g.add_argument("--ssl-cafile", metavar="CA.pem", help="CA that signed the brokers' certificates")
    g.add_argument("--ssl-certfile", metavar="CERT.pem", help="client certificate (mutual TLS)")
    g.add_argument("--ssl-keyfile", metavar="KEY.pem", help="the client certificate's key")
    g.add_argument("--sasl-mechanism", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    g.add_argument("--sasl-username", metavar="USER")


def kafka_settings(args: argparse.Namespace) -> Any:
    """The effective ``KafkaConfig``: file < env < flags; security problems are a ``ConfigError``."""
    from monitor.config import load_config  # noqa: PLC0415

    overrides = []
    for flag, key in FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None:
            overrides.append(f"kafka.{key}={value}")
    k = load_config(getattr(args, "config", None), overrides=overrides).kafka
    problems = security_problems(k)
    if problems:
        raise ConfigError("; ".join(problems))
    return k


def connected_producer(k: Any, **kw: Any):
    """A kafka-python producer after ``probe`` said the brokers answer (else its one-line cause)."""
    from monitor.sinks.kafka import make_producer  # noqa: PLC0415

    probe(k)
    return make_producer(k.bootstrap.split(","), client_options=kafka_python_options(k), **kw)
