"""The benchmark scripts' helpers import as top-level modules, as the scripts themselves do."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
