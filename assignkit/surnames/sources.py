"""Which installed name lists feed which language class, and how to read them.

Every class is one language.  Its names are the union of the listed Faker
``Provider`` attributes (per locale) plus, for Japanese, the surname table of
japanese-personal-name-dataset.  Locales of one language are merged (de_DE,
de_AT, de_CH and de_LI are all German).  Where a locale keeps male and female
forms in separate attributes, both are taken (Russian, Ukrainian and Greek
surnames have gendered forms; both are genuine surnames).  Lists that were
considered and left out are in :data:`UNUSED`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FakerList:
    """Attributes of ``faker.providers.person.<locale>.Provider`` to read."""

    locale: str
    attributes: tuple[str, ...] = ("last_names",)


@dataclass(frozen=True)
class LanguageSpec:
    """One class of the dataset and where its names come from."""

    language: str
    faker: tuple[FakerList, ...] = ()
    japanese_dataset: bool = False
    scheme: str = "auto"
    note: str = ""


@dataclass(frozen=True, order=True)
class RawName:
    """A surname as found in a source package, with the class it is filed under."""

    language: str
    text: str
    source: str


JAPANESE_SOURCE = "japanese-personal-name-dataset: get_last_names() romaji"

LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        "Arabic",
        (FakerList("fr_DZ"),),
        note="Algerian surnames in French-style Latin spelling (the Arabic-script lists would lose their vowels).",
    ),
    LanguageSpec(
        "Armenian",
        (FakerList("hy_AM"),),
        note="Armenian script, romanised (ու -> u, initial Ե/Ո -> Ye/Vo, aspiration marks dropped).",
    ),
    LanguageSpec(
        "Chinese",
        (
            FakerList("zh_CN", ("last_names", "last_romanized_names")),
            FakerList("zh_TW", ("last_names", "last_romanized_names")),
        ),
        note="Han characters read as pinyin (with surname readings for polyphonic characters), "
        "plus the pinyin (zh_CN) and Wade-Giles (zh_TW) romanised lists.",
    ),
    LanguageSpec(
        "Croatian",
        (FakerList("hr_HR"),),
    ),
    LanguageSpec(
        "Dutch",
        (FakerList("nl_NL"), FakerList("nl_BE")),
        note="Netherlands and Flemish lists; particles kept ('van der Linden' -> 'Van der Linden').",
    ),
    LanguageSpec(
        "English",
        (FakerList("en_GB"), FakerList("en_NZ")),
        note="British and New Zealand lists (en_US is left out: it is full of Spanish names).",
    ),
    LanguageSpec(
        "Finnish",
        (FakerList("fi_FI"),),
    ),
    LanguageSpec(
        "French",
        (FakerList("fr_FR"), FakerList("fr_CA")),
        note="France and Quebec lists.",
    ),
    LanguageSpec(
        "Georgian",
        (FakerList("ka_GE"),),
        note="Georgian script, romanised with ejective marks dropped (national system).",
    ),
    LanguageSpec(
        "German",
        (FakerList("de_DE"), FakerList("de_AT"), FakerList("de_CH"), FakerList("de_LI")),
        note="Germany, Austria, Switzerland and Liechtenstein.",
    ),
    LanguageSpec(
        "Greek",
        (FakerList("el_GR", ("last_names_male", "last_names_female")),),
        note="Greek script; digraphs romanised per ELOT 743 (ου -> ou, ευ -> ev/ef, initial μπ -> b, ...). "
        "Male and female forms.",
    ),
    LanguageSpec(
        "Irish",
        (FakerList("ga_IE"),),
        note="Irish-language (Gaelic) forms such as 'O Briain', 'Mac Aodha'; the anglicised en_IE list is not "
        "used because it mixes English and Irish names.",
    ),
    LanguageSpec(
        "Italian",
        (FakerList("it_IT"),),
    ),
    LanguageSpec(
        "Japanese",
        japanese_dataset=True,
        note="Romaji of the package's 1,999 surname entries (1,771 distinct spellings); long vowels are spelled "
        "out as in the kana ('Satou').",
    ),
    LanguageSpec(
        "Polish",
        (FakerList("pl_PL", ("unisex_last_names", "male_last_names")),),
        note="The unisex list and the -ski/-cki list (Faker has no separate -ska list).",
    ),
    LanguageSpec(
        "Russian",
        (FakerList("ru_RU", ("last_names_male", "last_names_female")),),
        note="Cyrillic via anyascii (soft/hard signs dropped). Male and female forms.",
    ),
    LanguageSpec(
        "Spanish",
        (FakerList("es_ES"), FakerList("es_MX"), FakerList("es_CO"), FakerList("es_CL"), FakerList("es_AR")),
        note="Spain, Mexico, Colombia, Chile and Argentina lists.",
    ),
    LanguageSpec(
        "Ukrainian",
        (FakerList("uk_UA", ("last_names_male", "last_names_female")),),
        scheme="ukrainian",
        note="Cyrillic romanised with the Ukrainian national system (г -> h, и -> y). Male and female forms.",
    ),
)
"""All classes, in class-index order (alphabetical)."""

UNUSED: tuple[tuple[str, str], ...] = (
    (
        "cs_CZ, sk_SK (Czech, Slovak)",
        "the two lists share many names; Czech has only 200, and Slovak blurs the Polish, Croatian and Russian classes",
    ),
    ("sv_SE (Swedish)", "many names of non-Swedish origin (Abbas, Gashi, Mohamud, ...); also blurs Finnish"),
    ("en_IE", "anglicised names that mix English and Irish origin (the Irish class uses the Irish-language ga_IE)"),
    ("en_US, en (generic)", "full of Spanish and other non-English names"),
    ("fr_BE, fr_CH, de_LU", "fr_BE and fr_CH mix French with Flemish/German names; de_LU is Luxembourgish"),
    ("ja_JP", "only 50 romanised names, all in the larger japanese-personal-name-dataset list"),
    (
        "ko_KR, vi_VN, pt_PT, pt_BR, hu_HU, tr_TR, ro_RO, da_DK, no_NO, sl_SI, lt_LT, lv_LV, bg_BG, mk_MK",
        "too few names for a class (10-175)",
    ),
    ("ar_*, fa_IR, he_IL", "anyascii romanises abjads without vowels, which gives unnatural spellings"),
    ("en_IN, en_PK, en_KE, hi_IN and other Indic/African lists", "the lists mix several languages of origin"),
)
"""Name lists deliberately left out, with the reason (quoted in DATASET.md)."""


def _as_names(value: object, where: str) -> list[str]:
    """Return the names in a Faker attribute, which may be a list, tuple or name->weight mapping."""
    if isinstance(value, Mapping):
        return [str(key) for key in value]
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    raise TypeError(f"{where} is a {type(value).__name__}, expected a list, tuple or mapping of names")


def faker_names(locale: str, attribute: str) -> list[str]:
    """Read ``faker.providers.person.<locale>.Provider.<attribute>``."""
    where = f"faker.providers.person.{locale}.Provider.{attribute}"
    module = importlib.import_module(f"faker.providers.person.{locale}")
    if not hasattr(module.Provider, attribute):
        raise AttributeError(f"{where} does not exist in the installed Faker")
    return _as_names(getattr(module.Provider, attribute), where)


def japanese_names() -> list[str]:
    """Romaji of the surnames in japanese-personal-name-dataset."""
    from japanese_personal_name_dataset import get_last_names

    return [str(entry["romaji"]) for entry in get_last_names()]


def _raw_names(spec: LanguageSpec) -> Iterable[RawName]:
    """Yield every raw name of one class with its source label."""
    for faker_list in spec.faker:
        for attribute in faker_list.attributes:
            source = f"Faker {faker_list.locale}.{attribute}"
            for text in faker_names(faker_list.locale, attribute):
                yield RawName(spec.language, text, source)
    if spec.japanese_dataset:
        for text in japanese_names():
            yield RawName(spec.language, text, JAPANESE_SOURCE)


def collect_raw_names(specs: Iterable[LanguageSpec] = LANGUAGES) -> list[RawName]:
    """All raw names of all classes, sorted (language, text, source) and without exact repeats."""
    return sorted({raw for spec in specs for raw in _raw_names(spec)})


def spec_by_language(specs: Iterable[LanguageSpec] = LANGUAGES) -> dict[str, LanguageSpec]:
    """Map each language name to its spec."""
    return {spec.language: spec for spec in specs}
