"""Run code in a kernel of a user's server, through the hub's proxy (REST + websocket)."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import quote

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


async def _execute(ws, user: str, code: str, timeout: float) -> dict:
    msg_id = uuid.uuid4().hex
    ws.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": user,
                    "session": uuid.uuid4().hex,
                    "msg_type": "execute_request",
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
        )
    )
    stdout, error = [], None

    async def collect():
        nonlocal error
        while True:
            raw = await ws.read_message()
            if raw is None:
                raise RuntimeError("kernel websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                stdout.append(msg["content"]["text"])
            elif kind == "error":
                error = f"{msg['content']['ename']}: {msg['content']['evalue']}"
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return

    await asyncio.wait_for(collect(), timeout)
    return {"stdout": "".join(stdout), "error": error}


async def run_cells(
    hub_url: str,
    token: str,
    user: str,
    codes: list[str],
    *,
    path: str | None = None,
    timeout: float = 120,
    server_url: str | None = None,
    shutdown: bool = True,
) -> list[dict]:
    """Run ``codes`` one after the other in one kernel, as Run All does: stop at the first error.

    With ``path`` the kernel belongs to that notebook's session, so it runs in
    the notebook's folder as in JupyterLab.  Returns one ``{"stdout", "error"}`` per cell run.
    ``server_url`` talks to a notebook server directly instead of through the hub;
    ``shutdown=False`` leaves the kernel running (the notebook's session keeps it).
    """
    base = server_url or f"{hub_url}/user/{quote(user, safe='')}"
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        if path is None:
            response = await client.post(f"{base}/api/kernels", json={"name": "python3"})
            response.raise_for_status()
            kernel_id = response.json()["id"]
        else:
            response = await client.post(
                f"{base}/api/sessions",
                json={"path": path, "name": path.rsplit("/", 1)[-1], "type": "notebook", "kernel": {"name": "python3"}},
            )
            response.raise_for_status()
            kernel_id = response.json()["kernel"]["id"]
        try:
            ws_url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
            ws = await websocket_connect(HTTPRequest(ws_url, headers=headers))
            results = []
            for code in codes:
                results.append(await _execute(ws, user, code, timeout))
                if results[-1]["error"]:
                    break
            ws.close()
            return results
        finally:
            if shutdown:
                await client.delete(f"{base}/api/kernels/{kernel_id}")


async def run_code(hub_url: str, token: str, user: str, code: str, timeout: float = 120) -> dict:
    """Start a kernel, execute ``code``, return ``{"stdout", "error"}`` and shut the kernel down."""
    return (await run_cells(hub_url, token, user, [code], timeout=timeout))[0]
