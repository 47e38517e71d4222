"""Keep tokens out of logs: a redacting function, a logging filter and a process wrapper.

Three kinds of secret travel through the hub, the launch service, the single-user
servers and configurable-http-proxy, and any of them may end up in a log line:

* openBIS session tokens, ``<userId>-<yyMMddHHmmssSSS>x<32 hex>`` (real openBIS and
  the stand-in in :mod:`openbis_hub_dev.standin.store` use the same form);
* openBIS personal access tokens, ``$pat-`` followed by the same form;
* JupyterHub API tokens, 32+ hex characters, normally in ``Authorization`` headers.

They turn up as query or form parameters (``?token=T``, ``?session=T``,
``?sessionID=T``), URL-encoded once or twice inside another URL
(``/hub/error/503?url=%2Fservices%2Fopenbis%2F%3Ftoken%3DT%26folder%3D...``), with
their own characters percent-encoded (``%24pat-...``), in ``Authorization`` headers,
or bare inside an exception message.  :func:`redact` replaces all of these with
``[secret]`` and leaves every other character alone.

Use it in-process with :class:`RedactingFilter` (also from a logging ``dictConfig`` as
``{"()": "openbis_hub.redact.RedactingFilter"}``) or :func:`install`, and around a
program whose logging we cannot configure (configurable-http-proxy) with::

    python -m openbis_hub.redact -- configurable-http-proxy --port 8000 ...
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import subprocess
import sys
import threading

SECRET = "[secret]"

# ``%3D``, ``%253D``, ``%25253D`` ...: an encoded character at any depth of encoding.
_ENC = r"%(?:25)*"

# A parameter is secret when its name ENDS in one of these (case-insensitive): token covers
# api_token, access_token, sessionToken, notebook_token ...; session-id also covers the
# jupyterhub-session-id cookie, sessionid also userSessionId.  Matching the end of the name
# needs no word boundary, so ``?token=``, ``&token=``, ``%3Ftoken%3D`` and ``%253Ftoken%253D``
# are all found the same way; ``"token": "..."`` (JSON, a repr'd dict) is covered too.
_PARAM_RE = re.compile(
    rf"(?P<key>(?:token|session(?:[-_]?id)?|passw(?:or)?d|xsrf)(?:=|{_ENC}3D|[\"']\s*:\s*[\"']))"
    # the value: up to a raw separator, or an encoded space " # & ' ; < > at any depth
    rf"(?:[^\s&#%\"'<>;]|%(?!(?:25)*(?:2[02367]|3[BCE]))[0-9A-F]{{2}})+",
    re.IGNORECASE,
)
# the same names, searched in the lowercased line: far faster than the case-insensitive pattern
_PARAM_HINT_RE = re.compile(rf"(?:token|session(?:[-_]?id)?|passw(?:or)?d|xsrf)(?:=|{_ENC}3d|[\"']\s*:\s*[\"'])")

# The distinctive end of an openBIS session token or PAT, ``-<yyMMddHHmmssSSS>x<32 hex>``; its
# literal first character ``x`` makes the search fast.
_OPENBIS_TAIL_RE = re.compile(r"x(?<=\d{12}x)[0-9A-Fa-f]{32,}")
# What may stand before that tail, read backwards: digits, the user id (characters an id may
# have; ``$ @ +`` possibly percent-encoded, once or more) and so a ``$pat-`` prefix.
# Matching the reversed text keeps this linear.
_OPENBIS_HEAD_REVERSED_RE = re.compile(r"(?:(?:42|04|[Bb]2)(?:52)*%|[\w.@+$-])*")


def _redact_openbis_tokens(text: str) -> str:
    """Replace each whole openBIS session token or PAT (found by its tail) with ``[secret]``."""
    out, pos = [], 0
    for match in _OPENBIS_TAIL_RE.finditer(text):
        head = text[pos : match.start()]
        out += (head[: len(head) - _OPENBIS_HEAD_REVERSED_RE.match(head[::-1]).end()], SECRET)
        pos = match.end()
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


_AUTH_RE = re.compile(
    # an Authorization header, as a raw header line or in a repr'd dict
    r"(?P<header>authorization[\"']?\s*[:=]\s*[\"']?(?:token|bearer|basic)\s+)[^\s\"',;]+"
    # or "token <32+ hex>" / "bearer <32+ hex>" without the header name
    r"|(?P<word>\b(?:token|bearer)\s+)[0-9a-f]{32,}\b",
    re.IGNORECASE,
)
_AUTH_HINT_RE = re.compile(
    r"authorization[\"']?\s*[:=]\s*[\"']?(?:token|bearer|basic)\s|(?:token|bearer)\s+[0-9a-f]{32}"
)


def _auth_sub(match: re.Match) -> str:
    return (match["header"] or match["word"]) + SECRET


def redact(text: str) -> str:
    """Return ``text`` with every token-looking value replaced by ``[secret]``.

    Covers sensitive query/form parameters (raw, URL-encoded and double-encoded),
    openBIS session tokens and PATs anywhere (``$`` possibly as ``%24``/``%2524``) and
    ``Authorization: token|bearer|basic <x>`` headers.  Ordinary text is returned as is;
    redacting an already redacted text changes nothing.

    Case-insensitive patterns and patterns starting with an alternation are slow in ``re``:
    each runs only after substring tests and then a case-sensitive "hint" pattern found its
    start in the lowercased line, so an ordinary line costs about a microsecond.
    """
    lower = text.lower()
    token = "token" in lower
    if (token or "session" in lower or "passw" in lower or "xsrf" in lower) and _PARAM_HINT_RE.search(lower):
        text = _PARAM_RE.sub(rf"\g<key>{SECRET}", text)
    if "x" in text:
        text = _redact_openbis_tokens(text)
    if (token or "authorization" in lower or "bearer" in lower) and _AUTH_HINT_RE.search(lower):
        text = _AUTH_RE.sub(_auth_sub, text)
    return text


_FORMATTER = logging.Formatter()  # formats tracebacks the way every stdlib-based formatter does


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record in place, so every handler sees it redacted.

    The message is formatted (``record.getMessage()``), redacted and stored back as
    ``record.msg`` with ``record.args = None``; a traceback is formatted into
    ``record.exc_text`` (which formatters use instead of formatting ``exc_info`` again)
    and redacted, and so is ``record.stack_info``.  Never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - bad %-args (any error): keep the line, never leak the args raw
            message = f"{record.msg} (could not format with args {record.args!r})"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _add_filter(filterer: logging.Filterer) -> None:
    if not any(isinstance(f, RedactingFilter) for f in filterer.filters):
        filterer.addFilter(RedactingFilter())


def install(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to ``logger`` (default: root) and each of its handlers.

    A filter on a handler sees every record the handler emits, including those that
    propagate from child loggers; handlers added later are not covered.  Idempotent.
    """
    logger = logger if logger is not None else logging.getLogger()
    _add_filter(logger)
    for handler in logger.handlers:
        _add_filter(handler)


# ---------------------------------------------------------------- process wrapper

_FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP")
_CHUNK = 1 << 20  # longest piece read at once when a child writes no newline


def _parent_death_signal():
    """A ``preexec_fn`` that has Linux SIGTERM the child when the wrapper dies, even by SIGKILL.

    Without it a killed wrapper would leave the proxy running, holding its ports.
    ``prctl`` is looked up here, in the parent, so that the forked child only calls it.
    None where there is no ``prctl``.
    """
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        return lambda: prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    return None


def _copy(source, target) -> None:
    """Copy ``source`` to ``target`` (binary streams) line by line, each line redacted and flushed.

    Bytes that are not UTF-8 become U+FFFD.  A partial line is passed on when it is the last
    one or reaches ``_CHUNK`` bytes, never earlier: a token must not be split in two.
    """
    broken = False
    for chunk in iter(lambda: source.readline(_CHUNK), b""):
        if broken:
            continue  # keep draining, so that the child never blocks on a full pipe
        try:
            target.write(redact(chunk.decode("utf-8", errors="replace")).encode("utf-8"))
            target.flush()
        except (OSError, ValueError):
            broken = True
    source.close()


def main(argv: list[str] | None = None) -> int:
    """Run ``argv`` (after an optional ``--``) with its stdout/stderr redacted; return its exit code.

    The child inherits environment, cwd and stdin; SIGTERM, SIGINT and SIGHUP are
    forwarded to it.  The exit code is the child's, or 128+N if signal N killed it.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print("usage: python -m openbis_hub.redact -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    try:
        # preexec_fn is safe here: our reader threads do not exist yet and the child only calls prctl
        death_signal = _parent_death_signal()
        pipe = subprocess.PIPE
        child = subprocess.Popen(args, stdout=pipe, stderr=pipe, preexec_fn=death_signal)  # noqa: PLW1509
    except OSError as e:
        print(f"openbis_hub.redact: cannot run {args[0]!r}: {e.strerror or e}", file=sys.stderr)
        return 127

    def forward(signum, _frame):
        child.send_signal(signum)  # a no-op once the child has been reaped

    signums = [getattr(signal, name) for name in _FORWARDED if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, forward) for signum in signums}
    try:
        copiers = [
            threading.Thread(target=_copy, args=(child.stdout, sys.stdout.buffer), daemon=True),
            threading.Thread(target=_copy, args=(child.stderr, sys.stderr.buffer), daemon=True),
        ]
        for thread in copiers:
            thread.start()
        returncode = child.wait()
        for thread in copiers:
            thread.join(timeout=5)  # a grandchild holding the pipes open must not keep us alive
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main())
