"""The console speaks English, Russian and Uzbek: every message has a translation, and dates,
numbers and plurals follow each language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from services.console import i18n
from services.console.render import environment

CONSOLE = Path(i18n.__file__).parent
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2),
            "N_": None, "NP_": ((1, "c"), 2)}  # fmt: skip


def _extracted() -> dict[tuple[str | None, str], str]:
    """(context, msgid) → where: every message the console's code and templates use."""
    found: dict[tuple[str | None, str], str] = {}
    for filename, line, message, _comments, context in extract_from_dir(
        CONSOLE, METHODS, options_map=OPTIONS, keywords=KEYWORDS
    ):
        msgid = message if isinstance(message, str) else message[0]
        found[(context, msgid)] = f"{filename}:{line}"
    return found


def test_messages_are_found() -> None:
    found = _extracted()
    assert (None, "Acknowledge") in found
    assert ("tab", "Acknowledged") in found
    assert (None, "%(count)s person withheld") in found
    assert len(found) > 150


@pytest.mark.parametrize("locale", ["ru", "uz"])
def test_every_console_message_is_translated(locale: str) -> None:
    path = CONSOLE / "locale" / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    problems = []
    for (context, msgid), where in sorted(_extracted().items(), key=str):
        entry = catalog.get(msgid, context=context)
        if entry is None:
            problems.append(f"{where}: {msgid!r} is not in {path.name}")
            continue
        translations = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if entry.fuzzy or not all(translations):
            problems.append(f"{where}: {msgid!r} has no {locale} translation")
    for entry, errors in catalog.check():  # placeholders and plural forms match the message
        problems += [f"{entry.id!r}: {error}" for error in errors]
    stale = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in catalog if m.id}
    stale -= set(_extracted())
    problems += [
        f"{msgid!r} is translated but no longer used" for _, msgid in sorted(stale, key=str)
    ]
    assert not problems, "\n".join(problems)


def test_translations_reach_the_templates() -> None:
    for locale, word in (("en", "Acknowledge"), ("ru", "Подтвердить"), ("uz", "Tasdiqlash")):
        template = environment(locale).from_string('{{ _("Acknowledge") }}')
        assert template.render() == word
    tab = environment("ru").from_string('{{ pgettext("tab", "Acknowledged") }}').render()
    state = environment("ru").from_string('{{ _("Acknowledged") }}').render()
    assert (tab, state) == ("Подтверждённые", "Подтверждено")


@pytest.mark.parametrize(
    ("locale", "counts"),
    [
        ("en", {1: "1 person withheld", 2: "2 persons withheld", 5: "5 persons withheld"}),
        ("ru", {1: "1 лицо скрыто", 3: "3 лица скрыты", 5: "5 лиц скрыто", 21: "21 лицо скрыто"}),
        ("uz", {1: "1 ta shaxs yashirilgan", 4: "4 ta shaxs yashirilgan"}),
    ],
)
def test_plurals_follow_the_language(locale: str, counts: dict[int, str]) -> None:
    template = environment(locale).from_string(
        "{% trans count=n %}{{ count }} person withheld{% pluralize %}"
        "{{ count }} persons withheld{% endtrans %}"
    )
    assert {n: template.render(n=n) for n in counts} == counts


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "ru"),
        ("uz-Latn-UZ,uz;q=0.9", "uz"),
        ("en-GB;q=0.5, ru;q=0.8", "ru"),
        ("de-DE,fr;q=0.9", "en"),
        ("ru;q=0, uz", "uz"),
        ("", "en"),
        (None, "en"),
        ("*;q=x,,;", "en"),
    ],
)
def test_accept_language_picks_the_best_supported(header: str | None, expected: str) -> None:
    assert i18n.negotiate(header) == expected


def test_dates_numbers_and_durations_by_language() -> None:
    moment = datetime(2026, 3, 7, 14, 5, tzinfo=UTC)
    tashkent = ZoneInfo("Asia/Tashkent")
    assert i18n.Formats("en").when(moment, tashkent) == "Mar 7, 2026 19:05"
    assert (
        i18n.Formats("ru").when(moment, tashkent) == "7 мар. 2026\N{NARROW NO-BREAK SPACE}г. 19:05"
    )
    assert i18n.Formats("uz").when(moment, tashkent) == "7-mar, 2026 19:05"
    assert i18n.Formats("en").number(20.032) == "20.032"
    assert i18n.Formats("ru").number(1234.5) == "1\N{NO-BREAK SPACE}234,5"
    span = timedelta(hours=2, minutes=3, seconds=59)
    assert i18n.Formats("en").duration(span) == "2 hr 3 min"
    assert i18n.Formats("ru").duration(span) == "2 ч 3 мин"
    assert i18n.Formats("uz").duration(timedelta(days=3, hours=4, minutes=5)) == "3 kun 4 soat"
    assert i18n.Formats("en").duration(timedelta(seconds=20)) == "< 1 min"
    assert i18n.Formats("ru").month("2026-03") == "март 2026\N{NARROW NO-BREAK SPACE}г."
    assert i18n.Formats("ru").country("TJ") == "Таджикистан"
    kabul = ZoneInfo("Asia/Kabul")
    assert i18n.Formats("en").zone_name(kabul, moment) == "UTC+04:30"
