"""End to end through Kafka: filled in once the service and producer exist."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def end_to_end(model_dir: Path, *, opts, ceiling: float) -> dict[str, Any]:
    from .suite import e2e_skipped  # noqa: PLC0415

    return e2e_skipped("the Kafka service is not wired into the bench yet")
