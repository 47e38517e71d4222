"""Notebooks waiting for a user's server that is still starting, kept by the hub.

The ELN's popup window opens only within a few seconds of the click, so the
launch service cannot wait for a cold server before it answers.  It hands the
notebook to the hub instead (``POST /hub/api/openbis/pending/<name>``, scope
``custom:openbis-hub:sync``) and answers at once; the user's server takes its
notebooks (``POST /hub/api/openbis/pending/<name>/take``, with its own hub
token) as it starts, before it serves, and places them.

Held in the hub's memory: bounded in count, bytes and age.  A notebook that
no server takes within ``max_age`` seconds is dropped with a warning.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

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

    def model(self) -> dict:
        return {"folder": self.folder, "fileName": self.file_name, "content": self.content}


class PendingNotebooks:
    """Per user, in arrival order."""

    def __init__(self, max_per_user: int = 20, max_bytes: int = 256 * 1024 * 1024, max_age: float = 600):
        self.max_per_user = max_per_user
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._queues: dict[str, list[PendingNotebook]] = defaultdict(list)
        self._bytes = 0

    def _expire(self, log=None) -> None:
        now = time.monotonic()
        for name, queue in list(self._queues.items()):
            kept = [n for n in queue if now - n.created < self.max_age]
            if len(kept) < len(queue):
                self._bytes -= sum(n.size for n in queue) - sum(n.size for n in kept)
                if log:
                    log.warning("Dropped %d notebook(s) for %s that no server took", len(queue) - len(kept), name)
            if kept:
                self._queues[name] = kept
            else:
                del self._queues[name]

    def add(self, name: str, notebook: PendingNotebook, log=None) -> None:
        self._expire(log)
        if len(self._queues[name]) >= self.max_per_user or self._bytes + notebook.size > self.max_bytes:
            raise web.HTTPError(503, "Too many notebooks are waiting for servers to start; try again shortly.")
        self._queues[name].append(notebook)
        self._bytes += notebook.size

    def take(self, name: str, log=None) -> list[PendingNotebook]:
        self._expire(log)  # a server that starts long after never gets notebooks past max_age
        taken = self._queues.pop(name, [])
        self._bytes -= sum(n.size for n in taken)
        return taken

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())


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
        self.pending.add(
            name, PendingNotebook(model["folder"], model["fileName"], model["content"], len(body)), self.log
        )
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
