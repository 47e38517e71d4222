"""Notebooks waiting for a user's server that is still starting, kept by the hub.

The ELN's popup window opens only within a few seconds of the click, so the
launch service cannot wait for a cold server before it answers.  It hands the
notebook to the hub instead (``POST /hub/api/openbis/pending/<name>``, scope
``custom:openbis-hub:sync``) and answers at once; the user's server takes its
notebooks (``POST /hub/api/openbis/pending/<name>/take``, with its own hub
token) as it starts, before it serves, and places them.

Bounded in count, bytes and age: a notebook that no server takes within
``max_age`` seconds is dropped with a warning.  Kept in the hub's memory and,
with a ``directory`` (``OpenBISAuthenticator.pending_dir``, by default in the
hub's state directory), also as one file each, so a hub that dies (a crash,
the OOM killer, an upgrade) finds them again when it is back: the click the
researcher made just before still lands in its notebook.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from .scopes import require_sync_scope


@dataclass
class PendingNotebook:
    folder: str
    file_name: str
    content: dict
    size: int
    created: float = field(default_factory=lambda: time.monotonic())
    file: Path | None = None  # where it is kept on disk, if it is

    def model(self) -> dict:
        return {"folder": self.folder, "fileName": self.file_name, "content": self.content}


class PendingNotebooks:
    """Per user, in arrival order; on disk too when given a ``directory`` (see the module's docstring)."""

    def __init__(
        self,
        max_per_user: int = 20,
        max_bytes: int = 256 * 1024 * 1024,
        max_age: float = 600,
        directory: str | os.PathLike | None = None,
        log: logging.Logger | None = None,
    ):
        self.max_per_user = max_per_user
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.directory = Path(directory) if directory else None
        self.log = log or logging.getLogger("openbis_hub.pending")
        self._queues: dict[str, list[PendingNotebook]] = defaultdict(list)
        self._bytes = 0
        if self.directory:
            self._load()

    def _expire(self, log=None) -> None:
        now = time.monotonic()
        for name, queue in list(self._queues.items()):
            kept = [n for n in queue if now - n.created < self.max_age]
            if len(kept) < len(queue):
                dropped = [n for n in queue if now - n.created >= self.max_age]
                self._bytes -= sum(n.size for n in dropped)
                self._forget(dropped)
                if log:
                    log.warning("Dropped %d notebook(s) for %s that no server took", len(dropped), name)
            if kept:
                self._queues[name] = kept
            else:
                del self._queues[name]

    def add(self, name: str, notebook: PendingNotebook, log=None) -> None:
        """Queue ``notebook`` for ``name`` (memory only: :meth:`keep` writes it to disk); 503 when full."""
        self._expire(log)
        if len(self._queues[name]) >= self.max_per_user or self._bytes + notebook.size > self.max_bytes:
            raise web.HTTPError(503, "Too many notebooks are waiting for servers to start; try again shortly.")
        self._queues[name].append(notebook)
        self._bytes += notebook.size

    def take(self, name: str, log=None) -> list[PendingNotebook]:
        self._expire(log)  # a server that starts long after never gets notebooks past max_age
        taken = self._queues.pop(name, [])
        self._bytes -= sum(n.size for n in taken)
        self._forget(taken)
        return taken

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    # on disk

    def keep(self, name: str, notebook: PendingNotebook) -> None:
        """Write ``notebook`` (queued for ``name``) to the directory, whole or not at all; blocking."""
        if self.directory is None:
            return
        folder = self.directory / sha256(name.encode()).hexdigest()[:32]  # no user name in a path
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        record = {"user": name, "age": time.monotonic() - notebook.created, "written": time.time(), **notebook.model()}
        target = folder / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        notebook.file = target
        if all(n is not notebook for n in self._queues.get(name, [])):
            self._forget([notebook])  # taken (or dropped) while it was being written

    def _forget(self, notebooks: list[PendingNotebook]) -> None:
        for notebook in notebooks:
            if notebook.file is not None:
                try:
                    notebook.file.unlink(missing_ok=True)
                except OSError as e:
                    self.log.warning("Could not remove a taken notebook's file: %s", e)
                notebook.file = None

    def _load(self) -> None:
        """The notebooks a previous hub kept and no server took, oldest first; expired or broken ones removed."""
        now, wall = time.monotonic(), time.time()
        for partial in self.directory.glob("*/.tmp-*"):  # a write the previous hub did not finish
            partial.unlink(missing_ok=True)
        found = []
        for path in sorted(self.directory.glob("*/*.json"), key=lambda p: p.name):
            try:
                record = json.loads(path.read_text())
                age = float(record["age"]) + max(0.0, wall - float(record["written"]))
                notebook = PendingNotebook(
                    str(record["folder"]), str(record["fileName"]), dict(record["content"]), path.stat().st_size
                )
                name = str(record["user"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                self.log.warning("Removing an unreadable waiting notebook %s: %s", path.name, type(e).__name__)
                path.unlink(missing_ok=True)
                continue
            notebook.created, notebook.file = now - age, path
            found.append((name, notebook))
        for name, notebook in found:
            self._queues[name].append(notebook)
            self._bytes += notebook.size
        self._expire(self.log)
        if len(self):
            self.log.info("%d notebook(s) wait for servers to start, kept from before the hub restarted", len(self))


class _PendingHandler(APIHandler):
    @property
    def pending(self) -> PendingNotebooks:
        return self.authenticator.pending_notebooks


class PendingNotebookHandler(_PendingHandler):
    """``POST /hub/api/openbis/pending/<name>`` ``{"folder", "fileName", "content"}``: the launch service queues one."""

    async def post(self, name):
        require_sync_scope(self)
        if self.find_user(name) is None:
            raise web.HTTPError(404, f"No user {name!r}.")
        body = self.request.body or b""
        try:
            model = json.loads(body)
        except ValueError:
            raise web.HTTPError(400, "Body must be JSON.") from None
        if not (
            isinstance(model, dict)
            and isinstance(model.get("folder"), str)
            and isinstance(model.get("fileName"), str)
            and isinstance(model.get("content"), dict)
        ):
            raise web.HTTPError(400, 'Body must be {"folder": str, "fileName": str, "content": notebook}.')
        notebook = PendingNotebook(model["folder"], model["fileName"], model["content"], len(body))
        self.pending.add(name, notebook, self.log)
        try:  # on disk too, so a hub restart does not lose it (off the event loop: it may be large)
            await asyncio.get_running_loop().run_in_executor(None, self.pending.keep, name, notebook)
        except OSError as e:
            self.log.warning("A waiting notebook for %s is kept in memory only: %s", name, e)
        self.set_status(202)
        self.write({"queued": len(self.pending)})


class TakePendingHandler(_PendingHandler):
    """``POST /hub/api/openbis/pending/<name>/take``: the user's server (or the service) takes them all.

    Allowed for the user themselves (any of their tokens: their server's own
    among them) and for the launch service.
    """

    async def post(self, name):
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        if getattr(user, "name", None) != name or getattr(user, "kind", "user") != "user":
            require_sync_scope(self)
        self.write({"notebooks": [n.model() for n in self.pending.take(name, self.log)]})


handlers = [
    (r"/api/openbis/pending/([^/]+)", PendingNotebookHandler),
    (r"/api/openbis/pending/([^/]+)/take", TakePendingHandler),
]
