"""The ELN's query string, read the way the ELN writes it.

The openBIS ELN builds its request by plain concatenation of what the
researcher typed (``JupyterUtil.js``)::

    "?token=" + token + "&folder=" + folder + "&filename=" + name + ".ipynb" + "&test=" + test

Nothing is URL-encoded; the browser then percent-encodes only what a URL may
not contain (spaces, quotes, ``<>``, controls, non-ASCII as UTF-8) and cuts
everything from ``#``.  So ``&``, ``=``, ``+`` and ``%`` arrive as typed.  A
standard query parser would split ``R&D`` at its ``&``, read ``+`` as a space
and turn ``50%ab`` into a replacement character; this module reads the
known keys in their known order instead, keeps ``+``, and decodes a
percent-escape only where it is valid UTF-8 (the browser's own work).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BadRequest

_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_ELN_SHAPE = re.compile(
    r"^token=(?P<token>.*?)&folder=(?P<folder>.*)&filename=(?P<filename>.*)&test=(?P<test>[^&]*)$", re.S
)

HASH_MESSAGE = (
    "The folder or notebook name contains '#': the browser sends nothing after a '#',"
    " so the name cannot reach the notebook server. Choose a name without '#'."
)


def decode_percent(text: str) -> str:
    """Decode ``%XX`` escapes that form valid UTF-8; keep every other ``%`` as typed.

    ``+`` stays a plus: the ELN never form-encodes.
    """

    def decode_run(match: re.Match) -> str:
        escapes = match.group(0)
        data = bytes(int(escapes[i + 1 : i + 3], 16) for i in range(0, len(escapes), 3))
        out, i = [], 0
        while i < len(data):
            lead = data[i]
            length = (
                1
                if lead < 0x80
                else 2
                if 0xC2 <= lead < 0xE0
                else 3
                if 0xE0 <= lead < 0xF0
                else (4 if 0xF0 <= lead < 0xF5 else 0)
            )
            chunk = data[i : i + length] if length else b""
            try:
                if len(chunk) != length or not length:
                    raise UnicodeDecodeError("utf-8", chunk, 0, 1, "incomplete")
                out.append(chunk.decode("utf-8"))
                i += length
            except UnicodeDecodeError:
                out.append(escapes[3 * i : 3 * i + 3])  # not UTF-8: the researcher typed it
                i += 1
        return "".join(out)

    return _ESCAPES.sub(decode_run, text)


@dataclass(frozen=True)
class ELNQuery:
    token: str | None
    folder: str | None
    filename: str | None
    test: str | None


def parse_eln_query(query: str) -> ELNQuery:
    """The ELN's four parameters from the raw query string.

    A query of the ELN's shape is split at its known keys, in order; any
    other query (another client, keys in another order) is read with the
    standard parser, still with ``+`` as a plus.
    """
    match = _ELN_SHAPE.match(query)
    if match:
        return ELNQuery(*(decode_percent(match.group(k)) for k in ("token", "folder", "filename", "test")))
    if query.startswith("token=") and "&test=" not in query:
        # the ELN's shape, cut short: the browser dropped everything from a '#'
        raise BadRequest(HASH_MESSAGE)
    values: dict[str, str] = {}
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        values[decode_percent(key)] = decode_percent(value)  # the last one wins, as in tornado
    return ELNQuery(values.get("token"), values.get("folder"), values.get("filename"), values.get("test"))
