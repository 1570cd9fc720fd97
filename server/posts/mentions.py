"""@mentions in post and comment text.

A mention is `@` followed by a name that obeys the username rule (3-30 letters, digits or
underscores) and is not glued to a word or a longer name on either side: "@ann" and "(@ann)"
mention ann; "bob@ann.example", "@an" and "@ann-" + 40 letters do not spill into others.
"""

from __future__ import annotations

import re

# Not after a name character (so e-mail addresses do not mention), and not followed by one
# (so a 31-character run is not cut down into a valid 30-character name).
_MENTION = re.compile(r"(?<![A-Za-z0-9_@])@([A-Za-z0-9_]{3,30})(?![A-Za-z0-9_])")
# A bound on the names one text can make us look up.
MAX_MENTIONS = 20


def mentioned_names(text: str) -> list[str]:
    """The distinct usernames mentioned in text, lowercased, in order of first appearance,
    at most MAX_MENTIONS."""
    names: dict[str, None] = {}
    for match in _MENTION.finditer(text):
        names.setdefault(match.group(1).lower(), None)
        if len(names) == MAX_MENTIONS:
            break
    return list(names)
