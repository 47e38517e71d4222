"""Find tokens in logs: every form a token can take in a URL or a header."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, quote_plus


def forms(token: str) -> set[str]:
    """The raw token and its URL-encoded forms (once, twice, form-encoded)."""
    once = quote(token, safe="")
    return {token, once, quote(once, safe=""), quote_plus(token)}


def leaks(tokens, paths) -> list[str]:
    """``"<file>: <form>"`` for every form of every token found in one of ``paths``."""
    found = []
    needles = {form: token for token in tokens if token for form in forms(token)}
    for path in paths:
        text = Path(path).read_text(errors="replace")
        for form in needles:
            if form in text:
                found.append(
                    f"{path}: a token (as {'raw' if form == needles[form] else 'encoded'}) at offset {text.index(form)}"
                )
    return found


NOT_OURS = {"standin.log"}  # openBIS's own log (the stand-in's), not one of this project's


def logs_under(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in Path(root).rglob("*.log") if p.is_file() and p.name not in NOT_OURS)
