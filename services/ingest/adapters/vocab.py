"""Agency vocabulary → canonical words: posts → unit ids, substance names, units of measure.

Uzbek agencies write in Uzbek (Latin or Cyrillic), Russian or English, with
or without the apostrophes of Uzbek Latin (``Do'stlik``) and with words such
as "BCP", "KPP" or "post" around a post's name. Everything is compared after
:func:`fold`, so ``"Oybek"``, ``"Ойбек"``, ``"Oybek BCP"`` and ``"KPP Ойбек"``
are the same post. The tables are data: add spellings here, never in an adapter.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

from schemas.topology import Topology

_APOSTROPHES = str.maketrans("", "", "'ʻʼ’‘`´")
_UZBEK_CYRILLIC = str.maketrans({"ў": "у", "қ": "к", "ғ": "г", "ҳ": "х", "ё": "е"})
_SEPARATORS = str.maketrans({"-": " ", "_": " ", "/": " ", ".": " "})
_POST_WORDS = frozenset(
    {
        "bcp",
        "kpp",
        "кпп",
        "post",
        "пост",
        "posti",
        "checkpoint",
        "blo",
        "imt",
        "мгр",
        "customs",
        "таможня",
        "таможенный",
        "bojxona",
        "божхона",
        "chegara",
        "border",
    }
)


def fold(text: str) -> str:
    """Case-folded, apostrophes dropped, Uzbek Cyrillic letters folded, spaces collapsed."""
    folded = text.casefold().translate(_APOSTROPHES).translate(_UZBEK_CYRILLIC)
    return " ".join(folded.split())


def _post_key(text: str) -> str:
    words = fold(text.translate(_SEPARATORS)).split()
    return " ".join(w for w in words if w not in _POST_WORDS)


_POSTS: Mapping[str, tuple[str, ...]] = {
    "BLO-OYBEK": ("oybek", "ойбек", "aybek", "айбек"),
    "BLO-DUSTLIK": ("dustlik", "dostlik", "do'stlik", "дустлик", "дўстлик"),
    "BLO-SARIOSIYO": ("sariosiyo", "sariasiya", "sariasiyo", "сариосиё", "сариасия"),
    "BLO-AYRITOM": ("ayritom", "airitom", "айритом", "термез мост", "termez bridge"),
    "IMT-GULISTAN": ("gulistan", "guliston", "гулистан", "гулистон", "syrdarya", "сырдарья"),
    "IMT-TASHKENT": ("tashkent", "toshkent", "ташкент", "тошкент"),
    "IMT-FERGHANA": ("ferghana", "fergana", "farg'ona", "фергана", "фаргона"),
    "IMT-SAMARKAND": ("samarkand", "samarqand", "самарканд", "самарқанд"),
    "IMT-TERMEZ": ("termez", "termiz", "термез", "термиз", "surkhandarya", "сурхандарья"),
    "IMT-NUKUS": ("nukus", "нукус", "karakalpakstan", "каракалпакстан"),
    "NIAC-UZ": ("niac", "ниац", "national information analytical center"),
}
"""Unit id → how Uzbek agencies write its post or area (any case, with or without "BCP")."""


@functools.cache
def _post_index(topology: Topology) -> Mapping[str, str]:
    index = {_post_key(unit_id): unit_id for unit_id in topology.units}
    for unit_id, spellings in _POSTS.items():
        if unit_id in topology:
            index.update({_post_key(s): unit_id for s in spellings})
    return MappingProxyType(index)


def unit_of_post(post: str, topology: Topology) -> str:
    """The unit id of a post as an agency wrote it, or ValueError."""
    unit = _post_index(topology).get(_post_key(post))
    if unit is None:
        raise ValueError(f"unknown post {post.strip()!r}: not a unit of the topology")
    return unit


_SUBSTANCES: Mapping[str, tuple[str, ...]] = {
    "heroin": ("heroin", "geroin", "героин"),
    "hashish": ("hashish", "hash", "gashish", "гашиш", "charas", "чарс"),
    "opium": ("opium", "afyun", "afyon", "opiy", "опий", "опиум", "афьюн"),
    "cannabis": (
        "cannabis",
        "marijuana",
        "marihuana",
        "marixuana",
        "марихуана",
        "каннабис",
        "kannabis",
        "nasha",
        "наша",
    ),
    "poppy straw": ("poppy straw", "koknori", "ko'knori", "кукнар", "кокнар", "маковая солома"),
    "cocaine": ("cocaine", "kokain", "кокаин"),
    "methamphetamine": ("methamphetamine", "metamfetamin", "метамфетамин", "pervitin", "первитин"),
    "amphetamine": ("amphetamine", "amfetamin", "амфетамин"),
    "mephedrone": ("mephedrone", "mefedron", "мефедрон"),
    "tramadol": ("tramadol", "трамадол"),
    "acetic anhydride": ("acetic anhydride", "sirka angidridi", "уксусный ангидрид"),
}
"""Canonical substance (as stored) → its spellings in English, Uzbek and Russian."""

SUBSTANCES: Mapping[str, str] = MappingProxyType(
    {fold(s): name for name, spellings in _SUBSTANCES.items() for s in spellings}
)


def substance(name: str) -> str:
    """The canonical substance of an agency's spelling, or ValueError."""
    canonical = SUBSTANCES.get(fold(name))
    if canonical is None:
        known = ", ".join(_SUBSTANCES)
        raise ValueError(f"unknown substance {name.strip()!r}: known are {known}")
    return canonical


_MEASURES: Mapping[str, tuple[str, ...]] = {
    "kg": ("kg", "кг", "kilo", "kilogram", "килограмм", "kilogramm"),
    "g": ("g", "gr", "г", "гр", "gram", "gramm", "грамм"),
    "mg": ("mg", "мг", "milligram", "миллиграмм"),
    "t": ("t", "т", "tonne", "tonna", "тонна"),
    "l": ("l", "л", "litre", "liter", "litr", "литр"),
    "ml": ("ml", "мл", "millilitre", "milliliter", "millilitr", "миллилитр"),
    "pieces": ("pieces", "pcs", "piece", "шт", "штук", "штука", "dona", "дона", "units"),
    "tablets": ("tablets", "tablet", "tab", "таб", "табл", "таблетка", "таблеток", "tabletka"),
}
"""A measure the schema accepts (it converts g → kg...) → how agencies write it."""

MEASURES: Mapping[str, str] = MappingProxyType(
    {fold(s).rstrip("."): m for m, spellings in _MEASURES.items() for s in spellings}
)


def measure(written: str) -> str:
    """The schema's word for an agency's unit of measure (``кг`` → ``kg``), or ValueError."""
    canonical = MEASURES.get(fold(written).rstrip("."))
    if canonical is None:
        raise ValueError(
            f"unknown unit of measure {written.strip()!r}: use kg, g, mg, t, l, ml, pieces or"
            " tablets (кг, г, мг, т, л, мл, шт, таб)"
        )
    return canonical
