"""Checks for the folder and file names the ELN sends.

They arrive unencoded and are typed by users, so everything that could
escape the user's notebook directory or hide a file is refused.

Lengths are counted in bytes of UTF-8, as filesystems count them: each name
(a folder or the notebook file) at most :data:`MAX_NAME_BYTES`, a folder path
as a whole at most :data:`MAX_FOLDER_BYTES`. A name of 128 ``ä`` is only 128
characters but 256 bytes, one too many. The messages end up in the ELN's
``alert("error: " + ...)``, so they are short sentences that say what to do.
"""

from __future__ import annotations

from ..errors import BadRequest

MAX_NAME_BYTES = 255
"""Longest folder or file name, in bytes of UTF-8 (NAME_MAX of ext4, XFS, btrfs and most others)."""

CHECKPOINT_SUFFIX = "-checkpoint"
MAX_NOTEBOOK_NAME_BYTES = MAX_NAME_BYTES - len(CHECKPOINT_SUFFIX)
"""Longest notebook file name: Jupyter keeps a copy ``<stem>-checkpoint.ipynb`` beside it, which must fit too."""

MAX_FOLDER_BYTES = 4096
"""Longest folder path, in bytes of UTF-8 (PATH_MAX on Linux)."""

_BYTES_NOTE = "letters such as 'ä' or 'é' count 2 bytes, many others 3 or 4"


class UnsafePath(BadRequest):
    """A folder or file name that could leave the notebook directory or hide a file."""


def _shown(value: str) -> str:
    """``repr(value)`` cut to 60 characters, to name a bad part in a message without echoing all of it."""
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _size(text: str) -> int:
    # surrogates (from a JSON "\ud800") cannot be written to a filesystem, but must not crash the check
    return len(text.encode("utf-8", "surrogatepass"))


def _check_part(part: str, what: str, limit: int = MAX_NAME_BYTES) -> None:
    """One name (a folder component or the file name); ``what`` names it in the messages."""
    if part in {".", ".."}:
        raise UnsafePath(f"The {what} must not contain '.' or '..' components.")
    if part.startswith("."):
        raise UnsafePath(f"The {what} must not contain hidden names (starting with '.'): {_shown(part)}.")
    if part != part.strip():
        raise UnsafePath(f"The {what} must not start or end with spaces: {_shown(part)}.")
    if any(not ch.isprintable() for ch in part):
        raise UnsafePath(f"The {what} must not contain control characters.")
    size = _size(part)
    if size > limit:
        subject = f"The {what} is" if what != "folder" else "A name in the folder is"
        raise UnsafePath(
            f"{subject} too long: {size} bytes, at most {limit} are allowed ({_BYTES_NOTE}). Choose a shorter name."
        )


def clean_folder(folder: str | None) -> str:
    """A relative folder inside the notebook directory ('' for the top).

    Surrounding spaces and empty components (``a//b``, a trailing ``/``) are dropped; each
    component must be a safe name of at most :data:`MAX_NAME_BYTES` bytes and the result at
    most :data:`MAX_FOLDER_BYTES` bytes, else :class:`UnsafePath`.
    """
    folder = (folder or "").strip()
    if "\x00" in folder or "\\" in folder:
        raise UnsafePath("The folder must not contain backslashes or NUL characters.")
    if folder.startswith(("/", "~")) or (len(folder) > 1 and folder[1] == ":"):
        raise UnsafePath("The folder must be relative to your notebook directory, not absolute.")
    parts = [p for p in folder.split("/") if p != ""]
    for part in parts:
        _check_part(part, "folder")
    cleaned = "/".join(parts)
    size = _size(cleaned)
    if size > MAX_FOLDER_BYTES:
        raise UnsafePath(
            f"The folder is too long: {size} bytes, at most {MAX_FOLDER_BYTES} are allowed ({_BYTES_NOTE})."
            " Choose a shorter folder."
        )
    return cleaned


def clean_notebook_name(filename: str | None) -> str:
    """A notebook file name: no folders, ends with .ipynb, at most :data:`MAX_NOTEBOOK_NAME_BYTES` bytes of UTF-8.

    A name that fits may still be too long to number (``name 2.ipynb``): :func:`numbered` checks that.
    """
    if not filename:
        raise UnsafePath("The notebook file name is missing ('filename').")
    if "/" in filename or "\\" in filename or "\x00" in filename:
        raise UnsafePath("The notebook file name must not contain '/', '\\' or NUL characters.")
    if not filename.endswith(".ipynb") or filename == ".ipynb":
        raise UnsafePath("The notebook file name must end with '.ipynb'.")
    _check_part(filename, "notebook file name", MAX_NOTEBOOK_NAME_BYTES)
    return filename


def join(folder: str, filename: str) -> str:
    """``folder/filename``, or ``filename`` alone for the top folder ('')."""
    return f"{folder}/{filename}" if folder else filename


def numbered(filename: str, n: int) -> str:
    """``name.ipynb`` -> ``name 2.ipynb`` for n = 2; ``filename`` itself for n = 1.

    Never returns a name longer than :data:`MAX_NOTEBOOK_NAME_BYTES` bytes: when the number would not
    fit (a name near the limit that is already taken), :class:`UnsafePath` asks for a shorter one,
    so callers that count up until a name is free need no check of their own.
    """
    stem = filename[: -len(".ipynb")]
    name = filename if n == 1 else f"{stem} {n}.ipynb"
    size = _size(name)
    if size > MAX_NOTEBOOK_NAME_BYTES:
        raise UnsafePath(
            f"The notebook file name is taken and too long to number: with ' {n}' added it has {size} bytes,"
            f" at most {MAX_NOTEBOOK_NAME_BYTES} are allowed ({_BYTES_NOTE}). Choose a shorter name."
        )
    return name
