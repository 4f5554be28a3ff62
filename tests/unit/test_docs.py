"""The documentation stays true to the code: settings, links, events, commands, references.

- every ``LIAISON_*`` setting of :class:`Settings` is in docs/configuration.md and the README's
  table, and neither names one the code does not have;
- every link from the README, docs/, examples/ and deploy/ to a file of the repository
  resolves, and so does its ``#anchor`` when it points into a Markdown file;
- every CloudEvent shown in docs/ is one of examples/ (which the tests validate), and every
  field of every event type is described in docs/events.md;
- every command of ``liaison`` is in docs/cli.md;
- the code cites docs/ pages that exist, and no longer the design file outside the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from schemas.export import event_schema
from schemas.vocabulary import EventType
from services.core.settings import Settings
from services.entrypoints.cli import app

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(
    [
        ROOT / "README.md",
        *DOCS.rglob("*.md"),
        *(ROOT / "examples").rglob("*.md"),
        *(ROOT / "deploy").glob("*.md"),
    ]
)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SETTING = re.compile(r"`(?:LIAISON_)?([A-Z][A-Z0-9_]+)`")


def _settings() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def _table_names(text: str, heading: str) -> set[str]:
    """The backticked names in the first column of the table under ``heading``."""
    section = text.split(heading, 1)[1]
    names: set[str] = set()
    started = False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            first = line.split("|")[1]
            names |= set(SETTING.findall(first))
        elif started:
            break
    return names - {"VARIABLE"}


def test_every_setting_is_documented_in_docs_and_the_readme() -> None:
    settings = _settings()
    docs = _table_names((DOCS / "configuration.md").read_text(encoding="utf-8"), "## Environment")
    readme = _table_names((ROOT / "README.md").read_text(encoding="utf-8"), "## Configuration")
    assert docs == settings, (
        f"docs/configuration.md: missing {settings - docs}, not settings {docs - settings}"
    )
    assert readme == settings, (
        f"README: missing {settings - readme}, not settings {readme - settings}"
    )


def test_no_page_names_a_setting_the_code_lacks() -> None:
    mentioned = re.compile(r"\bLIAISON_([A-Z][A-Z0-9_]*[A-Z0-9])\b")
    known = _settings() | {"TEST_REDIS_URL"}  # the test suite's own
    for page in PAGES:
        unknown = set(mentioned.findall(page.read_text(encoding="utf-8"))) - known
        assert not unknown, f"{page.relative_to(ROOT)} names LIAISON_{unknown}"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^#{1,6} (.+)$", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading[1].strip().lower().replace("`", ""))
            found.add(text.replace(" ", "-"))
    return found


def _links() -> list[tuple[Path, str]]:
    links = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        links += [(page, target) for target in LINK.findall(text)]
    return links


@pytest.mark.parametrize(
    ("page", "target"),
    _links(),
    ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v,
)
def test_links_to_repository_files_resolve(page: Path, target: str) -> None:
    if re.match(r"^[a-z]+:", target):  # https:, mailto: — outside the repository
        return
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    assert resolved.is_relative_to(ROOT), f"{target} leads outside the repository"
    assert resolved.exists(), f"{target}: no such file"
    if anchor and resolved.suffix == ".md":
        assert anchor in _anchors(resolved), f"{target}: no heading #{anchor}"


def test_links_are_checked() -> None:
    # the link check is not vacuous: the README links the reference and the examples
    targets = {target for page, target in _links() if page.name == "README.md"}
    assert {"docs/README.md", "examples/README.md"} <= targets


def _event_blocks(page: Path) -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    return [
        doc for doc in map(json.loads, blocks) if isinstance(doc, dict) and "specversion" in doc
    ]


def test_events_shown_in_docs_are_the_examples() -> None:
    examples = [json.loads(p.read_text("utf-8")) for p in (ROOT / "examples").rglob("*.json")]
    shown = [event for page in DOCS.rglob("*.md") for event in _event_blocks(page)]
    assert len(shown) >= len(EventType)  # one of each type in docs/events.md
    for event in shown:
        assert event in examples, f"{event['id']}: not an example file (tests validate those)"
    assert {e["type"] for e in _event_blocks(DOCS / "events.md")} == {t.value for t in EventType}


def test_every_field_of_every_event_is_described() -> None:
    text = (DOCS / "events.md").read_text(encoding="utf-8")
    for event_type in EventType:
        section = text.split(f"### `{event_type.value}`", 1)[1].split("\n### ", 1)[0]
        schema = event_schema(event_type)
        model = schema["properties"]["data"]["$ref"].rsplit("/", 1)[1]
        fields = set(schema["$defs"][model]["properties"])
        described = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))
        assert described == fields, (
            f"{event_type}: missing {fields - described}, not fields {described - fields}"
        )
    envelope = set(event_schema(EventType.ALERT_RAISED)["properties"])
    described = set(re.findall(r"^\| `([a-z_]+)` \|", text.split("## The envelope")[1], flags=re.M))
    assert envelope <= described


def _commands(group: typer.Typer, prefix: str = "liaison") -> set[str]:
    names = set()
    for command in group.registered_commands:
        names.add(
            f"{prefix} {command.name or (command.callback.__name__ if command.callback else '')}"
        )
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        names |= _commands(sub.typer_instance, f"{prefix} {sub.name}")
    return names


def test_every_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    commands = _commands(app)
    assert "liaison ledger verify" in commands
    for command in commands:
        assert f"`{command}" in text, f"{command} is not in docs/cli.md"


def test_the_code_cites_pages_that_exist() -> None:
    cited: set[str] = set()
    for path in [
        *ROOT.glob("services/**/*.py"),
        *ROOT.glob("schemas/**/*.py"),
        *ROOT.glob("schemas/*.yaml"),
        *ROOT.glob("tests/**/*.py"),
    ]:
        text = path.read_text(encoding="utf-8")
        assert "DESIGN " + "§" not in text, f"{path}: cite docs/ instead of the design file"
        cited |= set(re.findall(r"\bdocs/[\w./-]+\.md\b", text))
    assert cited
    for page in cited:
        assert (ROOT / page).exists(), page
