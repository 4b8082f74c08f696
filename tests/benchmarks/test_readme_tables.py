"""The README's result tables are the ones ``benchmarks/readme_tables.py`` writes from the
committed result files: a hand-edited or stale figure fails here."""
from __future__ import annotations

import readme_tables


def test_readme_tables_match_the_result_files():
    old = readme_tables.README.read_text()
    assert readme_tables.render(old) == old, "run: python benchmarks/readme_tables.py"
