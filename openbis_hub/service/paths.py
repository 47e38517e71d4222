"""Checks for the folder and file names the ELN sends.

They arrive unencoded and are typed by users, so everything that could
escape the user's notebook directory or hide a file is refused.
"""

from __future__ import annotations

from ..errors import BadRequest


class UnsafePath(BadRequest):
    """A folder or file name that could leave the notebook directory or hide a file."""


def _check_part(part: str, what: str) -> None:
    if part in {".", ".."}:
        raise UnsafePath(f"The {what} must not contain '.' or '..' components.")
    if part.startswith("."):
        raise UnsafePath(f"The {what} must not contain hidden names (starting with '.'): {part!r}.")
    if part != part.strip():
        raise UnsafePath(f"The {what} must not start or end with spaces: {part!r}.")
    if any(not ch.isprintable() for ch in part):
        raise UnsafePath(f"The {what} must not contain control characters.")


def clean_folder(folder: str | None) -> str:
    """A relative folder inside the notebook directory ('' for the top)."""
    folder = (folder or "").strip()
    if "\x00" in folder or "\\" in folder:
        raise UnsafePath("The folder must not contain backslashes or NUL characters.")
    if folder.startswith("/") or folder.startswith("~") or (len(folder) > 1 and folder[1] == ":"):
        raise UnsafePath("The folder must be relative to your notebook directory, not absolute.")
    if len(folder) > 255:
        raise UnsafePath("The folder name is too long (255 characters at most).")
    parts = [p for p in folder.split("/") if p != ""]
    for part in parts:
        _check_part(part, "folder")
    return "/".join(parts)


def clean_notebook_name(filename: str | None) -> str:
    """A notebook file name: no folders, ends with .ipynb."""
    if not filename:
        raise UnsafePath("The notebook file name is missing ('filename').")
    if "/" in filename or "\\" in filename or "\x00" in filename:
        raise UnsafePath("The notebook file name must not contain '/', '\\' or NUL characters.")
    if not filename.endswith(".ipynb") or filename == ".ipynb":
        raise UnsafePath("The notebook file name must end with '.ipynb'.")
    if len(filename) > 255:
        raise UnsafePath("The notebook file name is too long (255 characters at most).")
    _check_part(filename, "notebook file name")
    return filename


def join(folder: str, filename: str) -> str:
    return f"{folder}/{filename}" if folder else filename


def numbered(filename: str, n: int) -> str:
    """``name.ipynb`` -> ``name 2.ipynb`` for n = 2."""
    stem = filename[: -len(".ipynb")]
    return filename if n == 1 else f"{stem} {n}.ipynb"
