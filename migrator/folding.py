"""Case folding where the local database and Dataverse disagree.

Dataverse compares text case- and accent-insensitively (its collation), so a remote filter on
text is broader than the local query, as it should be, except where the local database folds
two characters that the remote may not: PostgreSQL's ``UPPER()`` maps the dotless i (U+0131)
and ``i`` both to ``I``, the long s (U+017F) to ``S``, the Kelvin sign to ``K``; collations of
other scripts differ between the two. For such databases, every character whose case the
local database folds beyond the plain ASCII pairs is sent as the class of characters it folds
with (``[Ii\u0131]``), a pattern both sides read alike. SQLite folds ASCII only, which Dataverse's
collation folds too, so its filters stay as written.
"""

from __future__ import annotations

import functools

from django.db import connections, models, router

from cdms_api.odata import LIKE_ESCAPES

LAST_CASED = 0x1E943  # no character past it has a case (Adlam, the last cased script)


def folding_differs(model: type[models.Model]) -> bool:
    """Whether the database ``model`` is read from folds case beyond ASCII."""
    return connections[router.db_for_read(model)].vendor != "sqlite"


def folded(text: str) -> str:
    """``text`` as a LIKE pattern (wildcards escaped) in which every character the local
    database folds with others than its ASCII pair stands as the class of them all."""
    classes = _classes()
    return "".join(
        f"[{classes[char]}]" if char in classes else char.translate(LIKE_ESCAPES) for char in text
    )


def _upper(char: str) -> str:
    """The upper case of a character as a database folds it: one character for one."""
    upper = char.upper()
    return upper if len(upper) == 1 else char


@functools.cache
def _classes() -> dict[str, str]:
    """For each character whose case class is more than an ASCII pair, the class."""
    groups: dict[str, list[str]] = {}
    for code in range(LAST_CASED + 1):
        char = chr(code)
        upper = _upper(char)
        if upper != char or char.lower() != char:
            groups.setdefault(upper, []).append(char)
    classes = {}
    for members in groups.values():
        if len(members) > 1 and not all(member.isascii() for member in members):
            pattern = "".join(sorted(set(members)))
            classes.update(dict.fromkeys(members, pattern))
    return classes
