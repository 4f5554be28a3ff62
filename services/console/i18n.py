"""Languages of the console: gettext catalogs (English, Russian, Uzbek Latin) and Babel's
dates, numbers and durations for each.

The catalogs are the ``.po`` files in ``locale/``, read once per process and compiled in
memory: there is no build step, so a fresh clone serves every language, and nothing compiled
can drift from its source. A message without a translation is a test failure
(``tests/unit/test_console_i18n.py``), never a silent English word.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from gettext import NullTranslations
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations
from babel.units import format_unit

LOCALES = ("en", "ru", "uz")
"""English (the messages' own language), Russian, Uzbek in Latin script."""
DEFAULT = "en"
NAMES = {"en": "English", "ru": "Русский", "uz": "Oʻzbekcha"}  # Uzbek ʻ is U+02BB
"""Each language in its own words, for the switcher."""
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
UTC = ZoneInfo("UTC")


def N_(message: str) -> str:
    """Mark a message for extraction; the template translates it when it shows it."""
    return message


def NP_(context: str, message: str) -> str:
    """Mark a message that needs a context (``pgettext``) to translate; returns the message."""
    del context
    return message


@functools.cache
def translations(locale: str) -> NullTranslations:
    """The catalog of a language (English: the messages themselves)."""
    if locale == DEFAULT:
        return NullTranslations()
    with (LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)  # a fuzzy entry is not a translation
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def supported(locale: str | None) -> str | None:
    """``locale`` if the console speaks it."""
    return locale if locale in LOCALES else None


def negotiate(accept_language: str | None) -> str:
    """The best language for an ``Accept-Language`` header (RFC 9110 weights), else English."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if tag and weight > 0:
            weighted.append((-weight, index, tag.strip()))
    preferred = [tag for _, _, tag in sorted(weighted)]
    try:
        found = Locale.negotiate(preferred, LOCALES, sep="-") if preferred else None
    except (UnknownLocaleError, ValueError):
        found = None
    return str(found) if found else DEFAULT


class Formats:
    """Dates, times, numbers and durations in one language."""

    def __init__(self, locale: str) -> None:
        self.locale = locale

    def when(self, moment: datetime, zone: ZoneInfo = UTC) -> str:
        """``7 мар. 2026 г. 19:05``: the locale's date, a 24-hour clock (operations' habit)."""
        local = moment.astimezone(zone)
        return f"{format_date(local, 'medium', locale=self.locale)} {local:%H:%M}"

    def time(self, moment: datetime, zone: ZoneInfo = UTC) -> str:
        """``19:05`` in ``zone``."""
        return format_time(moment.astimezone(zone), "HH:mm", locale=self.locale)

    def seconds_time(self, moment: datetime, zone: ZoneInfo = UTC) -> str:
        """``19:05:07`` in ``zone``: the ledger's precision for timelines."""
        return format_time(moment.astimezone(zone), "HH:mm:ss", locale=self.locale)

    def date(self, moment: datetime, zone: ZoneInfo = UTC) -> str:
        """The locale's medium date."""
        return format_date(moment.astimezone(zone), "medium", locale=self.locale)

    def number(self, value: float) -> str:
        """``20.032`` / ``20,032``: the locale's separators, up to three decimals."""
        return format_decimal(value, format="#,##0.###", locale=self.locale)

    def duration(self, span: timedelta) -> str:
        """``47 min``, ``2 h 3 min``, ``3 days 4 h``: at most two units, short forms."""
        minutes = max(int(span.total_seconds() // 60), 0)
        days, rest = divmod(minutes, 24 * 60)
        hours, minutes = divmod(rest, 60)
        parts = [(days, "duration-day"), (hours, "duration-hour"), (minutes, "duration-minute")]
        shown = [(n, unit) for n, unit in parts if n][:2]
        if not shown:  # under a minute
            return "< " + format_unit(1, "duration-minute", length="short", locale=self.locale)
        return " ".join(
            format_unit(n, unit, length="short", locale=self.locale) for n, unit in shown
        )

    def month(self, key: str) -> str:
        """``2026-03`` → ``Mar 2026`` / ``март 2026 г.``; the key itself if it is no month."""
        try:
            first = datetime.strptime(key, "%Y-%m")
        except ValueError:
            return key
        return format_skeleton("yMMM", first, locale=self.locale)

    def country(self, code: str) -> str:
        """A country's name in this language (``TJ`` → ``Таджикистан``); the code if unknown."""
        name = Locale.parse(self.locale).territories.get(code)
        return str(name) if name else code

    def zone_name(self, zone: ZoneInfo, moment: datetime) -> str:
        """``UTC+05:00``: a zone as an offset, which every reader understands."""
        offset = moment.astimezone(zone).utcoffset() or timedelta(0)
        sign = "-" if offset < timedelta(0) else "+"
        total = abs(int(offset.total_seconds())) // 60
        return f"UTC{sign}{total // 60:02d}:{total % 60:02d}"
