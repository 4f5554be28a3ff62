"""The score of ``make mutation`` per module, from mutmut's results (``mutants/*.meta``).

Not a test: ``python -m tests.mutation_report`` prints a Markdown table (killed, survived,
no test, timed out, score = killed / (killed + survived + no test)) and the survivors.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          37: "caught by type check", None: "not checked"}  # fmt: skip
"""mutmut 3.8's exit codes (``mutmut.stats.status_by_exit_code``; not imported: mutmut is
installed by ``make mutation`` only). Any other code is "suspicious"."""


def _status(code: int | None) -> str:
    return STATUS.get(code, "suspicious")


def main(root: Path = Path("mutants")) -> int:
    """Print the table; 1 if mutmut has not run here."""
    metas = sorted(root.glob("**/*.py.meta"))
    if not metas:
        print("no results: run `make mutation` first", file=sys.stderr)
        return 1
    print("| module | mutants | killed | survived | no test | timeout | score |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    survivors: list[str] = []
    for meta in metas:
        results = json.loads(meta.read_text())["exit_code_by_key"]
        if not results:
            continue
        status = Counter(_status(code) for code in results.values())
        # timeouts count as killed (mutmut's own view): the tests did not pass
        killed = status["killed"] + status["timeout"] + status["caught by type check"]
        missed = status["survived"] + status["no tests"]
        score = killed / (killed + missed) if killed + missed else 1.0
        module = str(meta.relative_to(root)).removesuffix(".meta")
        print(f"| `{module}` | {len(results)} | {killed} | {status['survived']} | "
              f"{status['no tests']} | {status['timeout']} | {score:.0%} |")  # fmt: skip
        survivors += [k for k, code in results.items()
                      if _status(code) in ("survived", "no tests")]  # fmt: skip
    if survivors:
        print("\nsurvivors (`mutmut show NAME` shows the change):")
        print("\n".join(f"- {name}" for name in survivors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
