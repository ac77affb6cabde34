"""Occupation -> field mapping for Pantheon 1.0's 88 occupations, and the era bands.

Fields group occupations the way a reader would (the source's own `industry`/`domain`
levels are kept as hints only: e.g. LINGUIST and HISTORIAN go to Social Science, PILOT to
Military). Outlaws (EXTREMIST, MAFIOSO, PIRATE) get their own field so a study can leave
them out with `--exclude-field Outlaws`. Every occupation maps; there is no "Unknown".
"""

from __future__ import annotations

# field -> occupations (Pantheon 1.0 spelling, upper case)
FIELD_OCCUPATIONS: dict[str, tuple[str, ...]] = {
    "Science": (
        "PHYSICIST", "CHEMIST", "BIOLOGIST", "ASTRONOMER", "GEOLOGIST", "ARCHAEOLOGIST",
        "PHYSICIAN",
    ),
    "Mathematics": ("MATHEMATICIAN", "STATISTICIAN"),
    "Technology": ("COMPUTER SCIENTIST", "ENGINEER", "INVENTOR"),
    "Social Science": (
        "ECONOMIST", "PSYCHOLOGIST", "SOCIOLOGIST", "ANTHROPOLOGIST", "GEOGRAPHER",
        "POLITICAL SCIENTIST", "HISTORIAN", "LINGUIST",
    ),
    "Philosophy": ("PHILOSOPHER",),
    "Literature": ("WRITER", "CRITIC", "JOURNALIST"),
    "Religion": ("RELIGIOUS FIGURE",),
    "Politics & Law": (
        "POLITICIAN", "NOBLEMAN", "DIPLOMAT", "JUDGE", "LAWYER", "PUBLIC WORKER",
    ),
    "Military": ("MILITARY PERSONNEL", "PILOT"),
    "Exploration": ("EXPLORER", "ASTRONAUT"),
    "Visual Arts": (
        "PAINTER", "SCULPTOR", "ARTIST", "PHOTOGRAPHER", "ARCHITECT", "DESIGNER",
        "FASHION DESIGNER", "COMIC ARTIST", "GAME DESIGNER",
    ),
    "Music": ("COMPOSER", "CONDUCTOR", "MUSICIAN", "SINGER"),
    "Film & Stage": ("ACTOR", "FILM DIRECTOR", "COMEDIAN", "DANCER"),
    "Business": ("BUSINESSPERSON", "PRODUCER"),
    "Sports": (
        "SOCCER PLAYER", "BASKETBALL PLAYER", "AMERICAN FOOTBALL PLAYER", "BASEBALL PLAYER",
        "HOCKEY PLAYER", "CRICKETER", "COACH", "REFEREE", "ATHLETE", "BOXER", "CHESSMASTER",
        "CYCLIST", "GOLFER", "GYMNAST", "MARTIAL ARTS", "MOUNTAINEER", "RACECAR DRIVER",
        "SKATER", "SKIER", "SNOOKER", "SWIMMER", "TENNIS PLAYER", "WRESTLER",
    ),
    "Public Life": (
        "SOCIAL ACTIVIST", "COMPANION", "CELEBRITY", "PRESENTER", "MODEL", "CHEF", "MAGICIAN",
        "PORNOGRAPHIC ACTOR",
    ),
    "Outlaws": ("EXTREMIST", "MAFIOSO", "PIRATE"),
}  # fmt: skip

FIELDS: tuple[str, ...] = tuple(FIELD_OCCUPATIONS)
OCCUPATION_FIELD: dict[str, str] = {
    occ: field for field, occs in FIELD_OCCUPATIONS.items() for occ in occs
}

# Era bands by birth year (negative = BCE): upper bounds are exclusive.
ERA_BANDS: tuple[tuple[str, float], ...] = (
    ("Ancient", 500),
    ("Medieval", 1400),
    ("Renaissance", 1550),
    ("Early Modern", 1750),
    ("Modern", 1920),
    ("Contemporary", float("inf")),
)
ERAS: tuple[str, ...] = tuple(name for name, _ in ERA_BANDS)


def era_of(birth_year: int) -> str:
    """Ancient < 500 <= Medieval < 1400 <= Renaissance < 1550 <= Early Modern < 1750 <=
    Modern < 1920 <= Contemporary."""
    for name, upper in ERA_BANDS:
        if birth_year < upper:
            return name
    raise AssertionError("unreachable: the last band is unbounded")

