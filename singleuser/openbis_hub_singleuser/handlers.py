"""HTTP endpoints of the extension, under the server's base URL.

All go through jupyter_server's authentication (a hub token with access to
this server, the user's browser session, or the server token).  Errors are
JSON ``{"message": ...}``; no token ever appears in an answer or a log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import posixpath
import tempfile

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from openbis_hub.errors import InvalidToken, OpenBISError, OpenBISHubError
from . import registration
from .registration import SaveError, expired_token_error
from .template import defaults_from_notebook, normalize_owner

AUTH_RESOURCE = "contents"


class BaseHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, ext):
        self.ext = ext

    def write_error(self, status_code, **kwargs):
        """The one place errors become answers: ``{"message", ...extra}``, never a traceback."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.set_header("Content-Type", "application/json")
        if isinstance(exc, OpenBISHubError):
            body = {"message": exc.message, **getattr(exc, "extra", {})}
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            body = {"message": exc.log_message % exc.args if exc.args else exc.log_message}
        elif exc is not None:
            body = {"message": "Internal error in the openBIS extension; see the server log."}
        else:
            body = {"message": self._reason}
        self.finish(json.dumps(body))

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise SaveError(status=400, message="The request body is not JSON.") from None
        if not isinstance(body, dict):
            raise SaveError(status=400, message="The request body must be a JSON object.")
        return body

    def require_openbis(self):
        if not self.ext.openbis_url:
            raise SaveError(status=500, message="This server does not know its openBIS (OPENBIS_URL is not set).")


class ConfigHandler(BaseHandler):
    """``GET openbis/config``: what the browser side needs to know."""

    @web.authenticated
    @authorized
    def get(self):
        self.finish(
            {
                "frame_ancestors": list(self.ext.frame_ancestors),
                "openbis_url": self.ext.openbis_url,
                "dataset_type": self.ext.dataset_type,
                "user": self.ext.hub_user,
            }
        )


class TokenHandler(BaseHandler):
    """``POST openbis/token``: read the owner's openBIS token from the hub now.

    The launch service calls this after a click with a new token.  Nothing
    comes with the request: the token is read from the owner's auth_state
    with this server's own hub token, so no caller can plant a token here.
    """

    @web.authenticated
    @authorized
    async def post(self):
        self.require_openbis()
        changed = await self.ext.refresh_token_from_hub()
        self.finish({"changed": changed, "has_token": self.ext.current_token() is not None})


class PendingHandler(BaseHandler):
    """``POST openbis/pending``: take the notebooks handed to the hub for this server and place them now.

    The launch service calls this when the ELN's dry run could not see the
    folder; nothing comes with the request, the notebooks come from the hub.
    """

    @web.authenticated
    @authorized
    async def post(self):
        placed = self.ext.place_pending(await self.ext.take_pending())
        self.finish({"placed": placed})


class HashHandler(BaseHandler):
    """``GET openbis/hash?path=``: SHA-256 of a file as saved."""

    @web.authenticated
    @authorized
    async def get(self):
        path = self.get_query_argument("path", "").strip("/")
        model = await read_saved(self.contents_manager, path)
        self.finish({"path": path, "hash": sha256(model["text"]), "hash_algorithm": "sha256"})


class SaveHandler(BaseHandler):
    """``GET openbis/save?path=``: dialog defaults; ``POST openbis/save``: register a dataset."""

    @web.authenticated
    @authorized
    async def get(self):
        path = self.get_query_argument("path", "").strip("/")
        self.require_openbis()
        model = await read_saved(self.contents_manager, path)
        defaults = self.defaults(path, model["nb"], {})
        answer = {**defaults, "path": path, "openbis_url": self.ext.openbis_url}
        token = self.ext.current_token()
        try:
            if not token:
                raise expired_token_error()
            info = await asyncio.get_running_loop().run_in_executor(
                None, registration.type_info, self.ext.openbis_url, token, self.ext.verify_ca, defaults["type"]
            )
            answer.update(info)
        except SaveError as e:
            answer.update(
                {"properties": None, "property_codes": None, "error": {"status": e.status, "message": e.message}}
            )
        self.finish(answer)

    @web.authenticated
    @authorized
    async def post(self):
        self.finish(await self.save(self.json_body()))

    def defaults(self, path: str, nb: dict, request: dict) -> dict:
        found = defaults_from_notebook(nb)
        stem = posixpath.basename(path)
        if stem.endswith(".ipynb"):
            stem = stem[: -len(".ipynb")]
        defaults = {
            "type": found.get("type") or self.ext.dataset_type,
            "owner": found.get("owner"),
            "parents": found.get("parents") or [],
            "name": found.get("name") or stem,
            "notes": found.get("notes") or "",
            "history_id": found.get("history_id") or "",
            "properties_values": {},
        }
        if "type" in request and request["type"]:
            defaults["type"] = str(request["type"])
        if "owner" in request and request["owner"] is not None:
            owner = normalize_owner(request["owner"])
            if owner is None:
                raise SaveError(
                    status=400, message='owner must be {"experiment": "<identifier or permId>"} or {"object": "<...>"}.'
                )
            defaults["owner"] = owner
        if "parents" in request and request["parents"] is not None:
            parents = request["parents"]
            if isinstance(parents, str):
                parents = [p for p in parents.replace(",", " ").split()]
            if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
                raise SaveError(status=400, message="parents must be a list of dataset permIds.")
            defaults["parents"] = [p.strip() for p in parents if p.strip()]
        for key in ("name", "notes", "history_id"):
            if key in request and request[key] is not None:
                if not isinstance(request[key], str):
                    raise SaveError(status=400, message=f"{key} must be a string.")
                defaults[key] = request[key]
        if "properties" in request and request["properties"] is not None:
            if not isinstance(request["properties"], dict):
                raise SaveError(status=400, message="properties must be an object {CODE: value}.")
            defaults["properties_values"] = {str(k): v for k, v in request["properties"].items()}
        return defaults

    async def save(self, body: dict) -> dict:
        self.require_openbis()
        path = body.get("path")
        if not isinstance(path, str) or not path.strip("/"):
            raise SaveError(status=400, message='Send {"path": "<notebook path>"}.')
        path = path.strip("/")
        model = await read_saved(self.contents_manager, path)
        settings = self.defaults(path, model["nb"], body)
        if not settings["owner"]:
            raise SaveError(
                status=400,
                message="No owner for the dataset: choose an experiment/collection or an object "
                '(owner {"experiment": id} or {"object": id}).',
            )
        token = self.ext.current_token()
        if not token:
            raise expired_token_error()
        try:
            await self.ext.openbis_client().session_information(token, use_cache=False)
        except InvalidToken:
            raise expired_token_error() from None
        except OpenBISError as e:
            raise SaveError(status=502, message=e.message) from None

        loop = asyncio.get_running_loop()
        name = posixpath.basename(path)
        with tempfile.TemporaryDirectory(prefix="openbis-save-") as tmp:
            files = [os.path.join(tmp, name)]
            with open(files[0], "w", encoding="utf-8") as f:
                f.write(model["text"])
            if self.ext.export_html:
                html = await loop.run_in_executor(None, export_html, model["nb"])
                files.append(os.path.join(tmp, name + ".html"))
                with open(files[1], "w", encoding="utf-8") as f:
                    f.write(html)
            result = await loop.run_in_executor(
                None,
                lambda: registration.register_dataset(
                    self.ext.openbis_url,
                    token,
                    self.ext.verify_ca,
                    type_code=settings["type"],
                    owner=settings["owner"],
                    parents=settings["parents"],
                    fields={k: settings[k] for k in ("name", "notes", "history_id")},
                    extra_properties=settings["properties_values"],
                    files=files,
                ),
            )
        self.log.info("openbis-hub: saved %s to openBIS as dataset %s", path, result["permId"])
        return {
            "permId": result["permId"],
            "link": self.ext.dataset_link(result["permId"]),
            "path": path,
            "type": settings["type"],
            "owner": settings["owner"],
            "parents": settings["parents"],
            "properties": result["properties"],
            "files": result["files"],
            "hash": sha256(model["text"]),
        }


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def read_saved(contents_manager, path: str) -> dict:
    """The notebook as saved on disk: ``{"text", "nb"}``."""
    import nbformat

    if not path:
        raise SaveError(status=400, message="Which notebook? Pass its path (e.g. folder/analysis.ipynb).")
    if not path.endswith(".ipynb"):
        raise SaveError(status=400, message="Only notebooks (.ipynb) can be saved to openBIS.")
    try:
        exists = await ensure_async(contents_manager.file_exists(path))
    except web.HTTPError as e:
        raise SaveError(status=e.status_code, message=e.log_message or "Cannot read the notebook.") from None
    if not exists:
        raise SaveError(status=404, message=f"No notebook at {path!r}.")
    try:
        model = await ensure_async(contents_manager.get(path, content=True, type="file", format="text"))
    except web.HTTPError as e:
        raise SaveError(status=e.status_code, message=e.log_message or "Cannot read the notebook.") from None
    text = model["content"]
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception:
        raise SaveError(status=400, message=f"{path!r} is not a valid notebook.") from None
    return {"text": text, "nb": nb}


def export_html(nb) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    return body
