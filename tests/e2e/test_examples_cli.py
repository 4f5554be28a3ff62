"""``liaison route`` on the shipped route examples, and with the example configuration."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import run

EXAMPLES = Path(__file__).parents[2] / "examples"


def _route(path: Path, env: dict[str, str] | None = None) -> dict[str, tuple[list[str], str]]:
    result = run("route", str(path), "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return {r["unit"]: (r["reasons"], r["view"]) for r in json.loads(result.stdout)["recipients"]}


def test_the_worked_example_reaches_four_units() -> None:
    # docs/routing.md: BLO-OYBEK, urgent, TJ → UZ → KZ, releasable to UZ and TJ
    assert _route(EXAMPLES / "route" / "oybek-urgent.json") == {
        "IMT-TASHKENT": (["neighbour", "corridor"], "full"),
        "IMT-GULISTAN": (["neighbour", "corridor"], "full"),
        "BLO-FOTEHOBOD": (["counterpart"], "non-nominal"),  # no piireleasableto: not TJ
        "NIAC-UZ": (["coordinator"], "full"),
    }


def test_a_red_alert_reaches_only_its_explicit_recipients() -> None:
    assert _route(EXAMPLES / "route" / "ayritom-red.json") == {
        "IMT-TERMEZ": (["explicit"], "full"),
        "IMT-SAMARKAND": (["explicit"], "full"),
    }


def test_persons_are_withheld_across_the_border_with_the_example_configuration() -> None:
    env = {"LIAISON_CONFIG": str(EXAMPLES / "liaison.yaml")}
    recipients = _route(EXAMPLES / "events" / "alert.raised.json", env)
    assert recipients["BLO-FOTEHOBOD"] == (["counterpart"], "non-nominal")
    assert recipients["IMT-GULISTAN"][1] == "full"


def test_route_as_a_table() -> None:
    result = run("route", str(EXAMPLES / "route" / "oybek-urgent.json"))
    assert result.returncode == 0, result.stderr
    assert "BLO-FOTEHOBOD" in result.stdout
    assert "counterpart" in result.stdout


def test_an_operations_alert_reaches_its_members_only_and_says_why() -> None:
    result = run(
        "route",
        str(EXAMPLES / "route" / "oybek-operation.json"),
        "--json",
        "--operation",
        str(EXAMPLES / "events" / "operation.opened.json"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    recipients = {
        r["unit"]: (r["reasons"], r["view"]) for r in json.loads(result.stdout)["recipients"]
    }
    assert recipients == {  # not IMT-TASHKENT nor NIAC-UZ: they are no members
        "IMT-GULISTAN": (["neighbour", "corridor", "operation"], "full"),
        "BLO-FOTEHOBOD": (["counterpart", "operation"], "non-nominal"),
        "IMT-NUKUS": (["operation"], "full"),
    }


def test_an_operations_alert_without_its_operation_is_one_line_exit_2() -> None:
    result = run("route", str(EXAMPLES / "route" / "oybek-operation.json"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "belongs to operation OP-NORTHERN-2026" in result.stderr
    assert "Traceback" not in result.stderr
