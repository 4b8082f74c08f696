"""Hot reload: notice a new ``latest`` version in a model root and load it, without a restart.

``ModelWatcher.poll()`` reads ``ROOT/latest`` at most every ``every_s`` seconds (a tiny file
read) and, when it names a version other than the one in use, loads that version and returns
it. ``StreamRunner`` calls it between flushes and swaps the model in for every window it has
not emitted yet (see ``StreamRunner.swap_model``). A version that fails to load, or that
loads but fails ``workers.model_check`` (threshold not finite, non-finite scores on the
training windows stored with it), is logged once as a warning and skipped; the running model
keeps scoring.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from models.artifacts import LATEST, resolve_model_dir
from workers.conditioned import bind_condition
from workers.model import LoadedModel, load_model
from workers.model_check import check_model

from monitor.errors import MonitorError

log = logging.getLogger(__name__)


class ModelWatcher:
    def __init__(self, root: str | Path, *, current_version: str | None = None, every_s: float = 5.0,
                 device: str = "auto", threshold_override: float | None = None,
                 condition: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = Path(root)
        if (self.root / "meta.json").is_file():  # a version folder: watch its root
            self.root = self.root.parent
        if not (self.root / LATEST).is_file():
            raise MonitorError(f"{self.root}: no '{LATEST}' file to watch for new model versions")
        self.current = current_version
        self.every_s, self.device, self.threshold_override = every_s, device, threshold_override
        self.condition = condition  # the route's condition, bound into every version loaded
        self.clock = clock
        self._next = clock() + every_s
        self._bad: str | None = None
        self.reloads = 0

    def latest_version(self) -> str | None:
        try:
            return (self.root / LATEST).read_text().strip() or None
        except OSError:
            return None

    def poll(self, *, force: bool = False) -> LoadedModel | None:
        """A newly loaded model when ``latest`` moved since the last load, else None."""
        now = self.clock()
        if not force and now < self._next:
            return None
        self._next = now + self.every_s
        version = self.latest_version()
        if version is None or version == self.current or version == self._bad:
            return None
        try:
            model = bind_condition(load_model(resolve_model_dir(self.root), device=self.device,
                                              threshold_override=self.threshold_override), self.condition)
            check_model(model)
        except MonitorError as exc:
            self._bad = version
            log.warning("new model version %s not used, still serving %s: %s", version,
                        self.current or "the loaded model", exc,
                        extra={"model": str(self.root), "model_version": version,
                               "serving": self.current})
            return None
        self.current = model.version
        self.reloads += 1
        log.info("model reloaded", extra={"model": str(model.folder), "model_version": model.version})
        return model
