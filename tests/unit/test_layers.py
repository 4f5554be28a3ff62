"""The rooms of the house keep their import rules (README "Architecture", docs/architecture.md).

The contracts are in pyproject.toml (``[tool.importlinter]``): the layers, no service importing
another, shared machinery importing no service, FastStream only in each service's ``app.py``,
SQL only in the ledger, and no import cycle at any depth of ``schemas``, ``services`` and
``bench``. ``lint-imports`` (import-linter) reads them from the project's root.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_every_import_contract_is_kept() -> None:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command, "import-linter is a test dependency (pip install -e '.[test]')"
    done = subprocess.run(
        [command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
