"""Cold start of the scoring path, run as its own process: ``python -m monitor.bench.coldstart``.

Arguments: the parent's ``time.time()`` just before it started this process, the model
folder and the device. Prints one JSON line: seconds since that moment at each phase
(imports, model loaded, first alerting window scored) and whether librosa or numba were
imported (they must not be: scoring never pays librosa's import or numba's JIT).
"""
from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    t0, model_dir, device = float(argv[0]), argv[1], argv[2] if len(argv) > 2 else "cpu"
    phases = {"interpreter": time.time() - t0}
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: F401, PLC0415

    from workers.model import load_model  # noqa: PLC0415
    from workers.pipeline import ScoringPipeline  # noqa: PLC0415

    phases["imports"] = time.time() - t0
    model = load_model(model_dir, device=device)
    phases["model_loaded"] = time.time() - t0
    pipe = ScoringPipeline(model)
    sr = model.frontend.sample_rate
    chunk = sr // 10
    audio = (0.05 * np.random.default_rng(0).standard_normal(4 * sr)).astype(np.float32)
    windows = []
    for a in range(0, len(audio), chunk):
        pipe.push("cold", audio[a:a + chunk], start_sample=a)
        windows = pipe.flush()
        if windows:
            break
    phases["first_window_scored"] = time.time() - t0
    print(json.dumps({"phases": phases, "windows": len(windows),
                      "librosa_imported": "librosa" in sys.modules, "numba_imported": "numba" in sys.modules}))
    return 0 if windows else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
