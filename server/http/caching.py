"""Conditional GETs (RFC 9110 section 13) for responses that depend on the viewer.

An endpoint declared with `etag=True` (server.http.endpoint) answers its 200s with

    ETag: "<base64url of the first 16 bytes of SHA-256 of the body>"   (a strong validator)
    Cache-Control: private, no-cache      (only the caller's cache keeps it, and revalidates)
    Vary: Authorization                   (the body depends on who asks)

and a GET whose `If-None-Match` matches that tag with a 304 carrying the same headers and no
body. Matching follows RFC 9110 section 13.1.2: `*` matches any current representation, a
list matches when one of its entity-tags does, and the comparison is weak (`W/"x"` matches
`"x"`). A malformed header matches nothing, so it gets the full 200.
"""

from __future__ import annotations

import base64
import hashlib
import re

from aiohttp import web
from multidict import CIMultiDict

CACHE_CONTROL = "private, no-cache"
# An entity-tag: optional weakness marker, then a quoted opaque tag (RFC 9110 section 8.8.3);
# If-None-Match is a list of them, where empty elements are allowed (section 5.6.1).
# (Each element's whitespace can be split only one way, so a long bad header cannot make
# the match backtrack exponentially.)
_TAG = r'(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)"'
_ELEMENT = r'[ \t]*(?:(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"[ \t]*)?'
_TAG_LIST = re.compile(rf"{_ELEMENT}(?:,{_ELEMENT})*")


def etag_of(body: bytes) -> str:
    """A strong entity-tag for these exact bytes."""
    digest = hashlib.sha256(body).digest()[:16]
    return '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") + '"'


def none_match(header: str | None, etag: str) -> bool:
    """Whether `If-None-Match: header` matches `etag` (so a GET answers 304).

    Weak comparison: only the opaque tags are compared. A header that is not `*` or a
    well-formed list of entity-tags matches nothing."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    if not _TAG_LIST.fullmatch(header):
        return False  # malformed: ignore the condition
    return _opaque(etag) in re.findall(_TAG, header)


def add_vary(headers: CIMultiDict[str], *names: str) -> None:
    """Add header names to `Vary`, keeping what is there and adding each name once."""
    present = [v.strip() for v in headers.get("Vary", "").split(",") if v.strip()]
    lowered = {v.lower() for v in present}
    for name in names:
        if name.lower() not in lowered:
            present.append(name)
            lowered.add(name.lower())
    if present:
        headers["Vary"] = ", ".join(present)


def conditional(request: web.Request, response: web.Response, *, private: bool) -> web.Response:
    """Give a 200 `response` its validator and caching headers; a 304 when the request's
    If-None-Match matches. `private`: the body depends on the caller (Vary: Authorization)."""
    body = response.body
    if response.status != 200 or not isinstance(body, bytes):
        return response
    headers = {"ETag": etag_of(body), "Cache-Control": CACHE_CONTROL}
    response.headers.update(headers)
    if private:
        add_vary(response.headers, "Authorization")
    if not none_match(request.headers.get("If-None-Match"), headers["ETag"]):
        return response
    not_modified = web.Response(status=304, headers=headers)
    if private:
        add_vary(not_modified.headers, "Authorization")
    return not_modified


def _opaque(etag: str) -> str:
    return etag.removeprefix("W/").strip('"')
