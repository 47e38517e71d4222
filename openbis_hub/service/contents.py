"""Files in a user's server, through the Jupyter Server contents and sessions APIs."""

from __future__ import annotations

from urllib.parse import quote

from ..errors import HubAPIError
from .hub import HubAPI


def _api(path: str) -> str:
    return "api/contents/" + quote(path, safe="/")


async def names_in(hub: HubAPI, user: str, folder: str) -> set[str] | None:
    """Names of the entries in ``folder`` (None if it does not exist)."""
    response = await hub.server_request(user, "GET", _api(folder), params={"content": "1"})
    if response.status_code == 404:
        return None
    model = response.json()
    if model.get("type") != "directory":
        raise HubAPIError(f"'{folder}' exists and is not a folder.", status=400)
    return {entry["name"] for entry in model.get("content") or []}


async def ensure_folder(hub: HubAPI, user: str, folder: str) -> None:
    """Create ``folder`` and its parents where missing."""
    parts = [p for p in folder.split("/") if p]
    for i in range(1, len(parts) + 1):
        path = "/".join(parts[:i])
        response = await hub.server_request(user, "GET", _api(path), params={"content": "0"})
        if response.status_code == 404:
            await hub.server_request(user, "PUT", _api(path), json={"type": "directory"})
        elif response.json().get("type") != "directory":
            raise HubAPIError(f"'{path}' exists and is not a folder.", status=400)


async def save(hub: HubAPI, user: str, path: str, content, *, kind: str = "notebook", fmt: str = "json") -> dict:
    """Write a file; returns the contents model (without content)."""
    body = {"type": kind, "format": fmt, "content": content}
    response = await hub.server_request(user, "PUT", _api(path), json=body)
    return response.json()


async def get(hub: HubAPI, user: str, path: str, *, fmt: str | None = None) -> dict | None:
    """The contents model with content, or None if there is no such file.

    ``fmt="text"`` reads any file as text (type ``file``).
    """
    params = {"content": "1"}
    if fmt:
        params.update({"format": fmt, "type": "file"})
    response = await hub.server_request(user, "GET", _api(path), params=params)
    return None if response.status_code == 404 else response.json()


async def open_session(hub: HubAPI, user: str, path: str, kernel: str = "python3") -> dict:
    """A kernel session for the notebook at ``path`` (reused if one exists)."""
    body = {"path": path, "name": path.rsplit("/", 1)[-1], "type": "notebook", "kernel": {"name": kernel}}
    response = await hub.server_request(user, "POST", "api/sessions", json=body)
    return response.json()


async def sessions(hub: HubAPI, user: str) -> list[dict]:
    response = await hub.server_request(user, "GET", "api/sessions")
    return response.json()
