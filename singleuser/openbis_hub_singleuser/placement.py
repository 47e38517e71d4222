"""Notebooks the launch service handed over while this server was starting: placed before it serves.

The ELN's dry run could not see the folder (the server was not running), so
the name it got may be taken by an older file.  Nothing is overwritten: the
notebook then gets the next free name (``name 2.ipynb``), its ``fileName``
cell says so, and the ELN's URL for the name it asked for redirects to it
(see :class:`RedirectedNotebook`), so the researcher lands in the notebook
just posted, never in the older one.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from jupyter_server.base.handlers import JupyterHandler
from tornado import web
from tornado.escape import url_unescape
from tornado.routing import Matcher

from openbis_hub.eln_template import note_taken_name

MAX_NAME_BYTES = 244  # leaves room for Jupyter's "<stem>-checkpoint.ipynb"


class PlacementError(Exception):
    pass


def _safe_relative(folder: str, file_name: str) -> tuple[str, str]:
    parts = [p for p in folder.split("/") if p]
    if any(p in {".", ".."} or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        raise PlacementError(f"unsafe folder {folder[:80]!r}")
    if (
        "/" in file_name
        or "\\" in file_name
        or "\x00" in file_name
        or file_name.startswith(".")
        or not file_name.endswith(".ipynb")
    ):
        raise PlacementError(f"unsafe file name {file_name[:80]!r}")
    return "/".join(parts), file_name


def _numbered(file_name: str, n: int) -> str:
    return file_name if n == 1 else f"{file_name[: -len('.ipynb')]} {n}.ipynb"


def _rename_in_file_name_cell(content: dict, old: str, new: str) -> None:
    """The ELN's ``fileName='...'`` cell names the file its save cells export; keep it true."""
    for cell in content.get("cells", []):
        if (cell.get("metadata") or {}).get("code_cell_id") == "fileName":
            source = "".join(cell.get("source") or [])
            if old in source:
                cell["source"] = [source.replace(repr(old), repr(new)).replace(f'"{old}"', repr(new))]
            return


def place(root_dir: str, folder: str, file_name: str, content: dict) -> str:
    """Write the notebook under ``root_dir/folder`` without replacing anything; its path as placed."""
    folder, file_name = _safe_relative(folder, file_name)
    root = Path(root_dir).resolve()
    directory = (root / folder).resolve() if folder else root
    if root != directory and root not in directory.parents:
        raise PlacementError("folder outside the notebook directory")
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        name = _numbered(file_name, n)
        if len(name.encode()) > MAX_NAME_BYTES:
            raise PlacementError("no free name short enough")
        if n > 1:
            _rename_in_file_name_cell(content, _numbered(file_name, n - 1), name)
            note_taken_name(content, folder, file_name, name)
        data = (json.dumps(content, indent=1, ensure_ascii=False) + "\n").encode()
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".openbis-hub-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, directory / name)  # fails if the name exists: never replaces a file
            except FileExistsError:
                continue
            return posixpath.join(folder, name) if folder else name
        finally:
            os.unlink(tmp)
    raise PlacementError("no free name")


ROUTES = ("notebooks/", "lab/tree/", "doc/tree/")


def requested_notebook(request, base_url: str) -> tuple[str, str] | None:
    """``(route, path)`` of a request for a notebook's page (the ELN's URL and JupyterLab's), else None."""
    path = url_unescape(request.path, plus=False)
    for route in ROUTES:
        # the request path is decoded: so must be the base URL (JupyterHub escapes user names in it)
        prefix = url_unescape(base_url + route, plus=False)
        if path.startswith(prefix):
            return route, path[len(prefix) :]
    return None


class RedirectedNotebook(Matcher):
    """Matches a notebook URL whose file was placed under another name (see :func:`place`)."""

    ROUTES = ROUTES

    def __init__(self, base_url: str, redirects: dict[str, str]):
        self.base_url = base_url
        self.redirects = redirects

    def match(self, request):
        found = requested_notebook(request, self.base_url)
        if found and found[1] in self.redirects:
            return {"path_args": list(found), "path_kwargs": {}}
        return None


class UnplacedNotebook(Matcher):
    """Matches the page of a notebook that is not there yet and was not looked for lately.

    The ELN's tab can arrive before the launch service told a just-started
    server to take what the hub holds for it (a hub restarted mid-start, a
    server that asked the hub before the ELN's notebook reached it): such a
    request takes the waiting notebooks first (:class:`PlaceWaitingHandler`).
    A path looked for is not looked for again for ``recheck_after`` seconds,
    so a notebook that never comes gets Jupyter's own "not found".
    """

    def __init__(self, base_url: str, root_dir: str, looked_for: dict[str, float], recheck_after: float = 30.0):
        self.base_url = base_url
        self.root_dir = root_dir
        self.looked_for = looked_for
        self.recheck_after = recheck_after

    def match(self, request):
        found = requested_notebook(request, self.base_url)
        if not found or not found[1].endswith(".ipynb"):
            return None
        path = found[1]
        parts = path.split("/")
        if any(p in {"", ".", ".."} for p in parts) or os.path.exists(os.path.join(self.root_dir, *parts)):
            return None
        since = self.looked_for.get(path)
        if since is not None and time.monotonic() - since < self.recheck_after:
            return None
        return {"path_args": list(found), "path_kwargs": {}}


def looked_for_now(looked_for: dict[str, float], path: str, keep: int = 256) -> None:
    """Record that ``path`` was just looked for; only the latest ``keep`` paths are remembered."""
    looked_for.pop(path, None)
    looked_for[path] = time.monotonic()
    while len(looked_for) > keep:
        del looked_for[next(iter(looked_for))]


class RedirectHandler(JupyterHandler):
    """The ELN's URL for a notebook placed under another name: to that name, for this server's users only
    (anyone else is sent to log in first, as by Jupyter's own pages, and learns no file name)."""

    def initialize(self, redirects: dict[str, str]):
        self.redirects = redirects

    @web.authenticated
    def get(self, route, path):
        self.redirect(notebook_url(self.base_url, route, self.redirects[path]))


class PlaceWaitingHandler(JupyterHandler):
    """The page of a notebook that is not there yet: take what the hub holds for this server, then load it again.

    The rule (:class:`UnplacedNotebook`) sends here only paths not looked for
    lately, so the second load is Jupyter's own page, found or not.
    """

    def initialize(self, ext, looked_for: dict[str, float]):
        self.ext = ext  # the OpenBISServerExtension
        self.looked_for = looked_for

    @web.authenticated
    async def get(self, route, path):
        await self.ext.place_waiting()
        looked_for_now(self.looked_for, path)
        target = notebook_url(self.base_url, route, self.ext.redirects.get(path, path))
        self.redirect(target + ("?" + self.request.query if self.request.query else ""))


def notebook_url(base_url: str, route: str, path: str) -> str:
    """The URL of the notebook page at ``path`` (not escaped) on ``route`` (one of :data:`ROUTES`)."""
    return base_url + route + quote(path, safe="/")
