"""HTTP handlers of the launch service.

Every answer is JSON; errors are ``{"status": ..., "message": ...}`` and never
carry a token or a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from urllib.parse import parse_qs, quote

import nbformat
from tornado import web

from ..errors import BadRequest, OpenBISHubError, PayloadTooLarge, Unauthorized
from . import contents
from .openapi import openapi_document
from .paths import clean_folder, clean_notebook_name, join
from .template import eln_notebook

log = logging.getLogger("openbis_hub.service")


class BaseHandler(web.RequestHandler):
    """JSON errors, CORS for the ELN's origins, no query strings in logs."""

    @property
    def launcher(self):
        return self.settings["launcher"]

    def _request_summary(self) -> str:
        # the ELN puts the openBIS token in the query string: never log it
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        origin = self.request.headers.get("Origin")
        if origin and origin in self.settings["eln_origins"]:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Credentials", "true")
        self.add_header("Vary", "Origin")

    def options(self, *args):
        """CORS preflight."""
        self.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()

    def check_xsrf_cookie(self):
        pass  # no cookies are used: the openBIS token authenticates every request

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, OpenBISHubError):
            message = exc.message
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code >= 500:
            message = "Internal error of the openBIS launch service; the administrator finds details in its log."
        else:
            message = self._reason
        self.finish({"status": status_code, "message": message, **getattr(exc, "extra", {})})

    def _handle_request_exception(self, e):
        if isinstance(e, OpenBISHubError):
            log.warning("%s -> %s %s", self._request_summary(), e.status, e.message)
            if not self._finished:
                self.send_error(e.status, exc_info=sys.exc_info())
            return
        super()._handle_request_exception(e)

    def log_exception(self, typ, value, tb):
        if isinstance(value, web.HTTPError):
            log.warning("%s -> %s", self._request_summary(), value.status_code)
        else:
            log.error("Uncaught error in %s", self._request_summary(), exc_info=(typ, value, tb))

    def bearer_token(self) -> str:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in {"bearer", "token"} or not token.strip():
            error = Unauthorized("No auth information found")
            error.extra = {"error": "unauthorized"}
            raise error
        return token.strip()

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            raise BadRequest("The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise BadRequest("The body must be a JSON object.")
        return body

    def notebook_link(self, user: str, path: str) -> str:
        base = self.settings["public_url"] or f"{self.request.protocol}://{self.request.host}"
        return f"{base.rstrip('/')}/user/{quote(user, safe='')}/notebooks/{quote(path, safe='/')}"


@web.stream_request_body
class StreamedBodyHandler(BaseHandler):
    """Reads at most ``max_body_size`` bytes of the body; a larger one is answered 413."""

    def prepare(self):
        self.request.connection.set_max_body_size(1 << 40)  # counted here instead
        self._chunks: list[bytes] = []
        self._size = 0

    def data_received(self, chunk: bytes):
        self._size += len(chunk)
        if self._size <= self.settings["max_body_size"]:
            self._chunks.append(chunk)

    @property
    def body(self) -> bytes:
        if self._size > self.settings["max_body_size"]:
            limit = self.settings["max_body_size"] / (1 << 20)
            raise PayloadTooLarge(f"The body is larger than {limit:g} MiB.")
        return b"".join(self._chunks)

    def json_body(self) -> dict:
        self.request.body = self.body
        return super().json_body()


def _parse_notebook(body: bytes) -> dict:
    try:
        notebook = nbformat.reads(body.decode("utf-8"), as_version=4)
        nbformat.validate(notebook)
    except UnicodeDecodeError:
        raise BadRequest("The body is not UTF-8 text.") from None
    except Exception as e:  # nbformat raises several kinds
        reason = getattr(e, "message", None) or str(e).splitlines()[0][:200]
        raise BadRequest(f"The body is not a valid Jupyter notebook: {reason}") from None
    return notebook


class ELNHandler(StreamedBodyHandler):
    """The ELN's requests, as the ELN-Jupyter webservice answered them.

    ``POST <prefix>?token=&folder=&filename=&test=True`` with body ``TEST``
    (dry run), then ``test=False`` with the notebook JSON as body.
    """

    def get(self, *args):
        self.set_header("Allow", "POST, OPTIONS")
        raise OpenBISHubError(
            "This is the openBIS ELN's notebook endpoint: POST a notebook with"
            " ?token=<openBIS token>&folder=<folder>&filename=<name>.ipynb&test=False."
            " The JSON API for applications is under api/ (see api/openapi.json).",
            status=405,
        )

    def _query(self, name: str) -> str | None:
        # parsed here, not with get_query_argument, which turns NUL and other
        # control characters into spaces and would hide them from the checks
        if not hasattr(self, "_arguments"):
            self._arguments = parse_qs(self.request.query, keep_blank_values=True)
        values = self._arguments.get(name)
        return values[-1] if values else None

    async def post(self, *args):
        token = self._query("token")
        if not token:
            raise Unauthorized("The openBIS token is missing (?token=).")
        test = (self._query("test") or "False").strip().lower()
        if test not in {"true", "false", "1", "0"}:
            raise BadRequest("The parameter 'test' must be True or False.")
        dry_run = test in {"true", "1"}
        if self._query("filename") is None:
            raise BadRequest("The parameter 'filename' is missing.")
        folder = clean_folder(self._query("folder"))
        filename = clean_notebook_name(self._query("filename"))
        notebook = None if dry_run else _parse_notebook(self.body)
        async with self.launcher.user_server(token) as user:
            chosen, folder_exists = await self.launcher.choose_name(user, folder, filename, dry_run=dry_run)
            if notebook is not None:
                if not folder_exists:
                    await contents.ensure_folder(self.launcher.hub, user, folder)
                await contents.save(self.launcher.hub, user, join(folder, chosen), notebook)
        path = join(folder, chosen)
        self.finish({"fileName": chosen, "path": path, "link": self.notebook_link(user, path)})


class CreateNotebookHandler(StreamedBodyHandler):
    """``POST api/notebooks``: build the ELN's notebook here and open it in the user's server."""

    async def post(self):
        token = self.bearer_token()
        body = self.json_body()
        owner = body.get("owner")
        if not (isinstance(owner, dict) and len(owner) == 1 and set(owner) <= {"experiment", "object"}):
            raise BadRequest("'owner' must be {\"experiment\": <id>} or {\"object\": <id>}.")
        if not isinstance(next(iter(owner.values())), str):
            raise BadRequest("The owner's id must be a string.")
        datasets = body.get("datasets") or []
        if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
            raise BadRequest("'datasets' must be a list of dataset permIds.")
        folder = clean_folder(body.get("folder"))
        name = body.get("name") or "notebook"
        if not isinstance(name, str):
            raise BadRequest("'name' must be a string.")
        filename = clean_notebook_name(name if name.endswith(".ipynb") else name + ".ipynb")
        async with self.launcher.user_server(token) as user:
            chosen, folder_exists = await self.launcher.choose_name(user, folder, filename, dry_run=False)
            notebook = eln_notebook(chosen, [{"permId": d} for d in datasets], owner)
            if not folder_exists:
                await contents.ensure_folder(self.launcher.hub, user, folder)
            await contents.save(self.launcher.hub, user, join(folder, chosen), notebook)
        path = join(folder, chosen)
        self.set_status(201)
        self.finish({"fileName": chosen, "path": path, "link": self.notebook_link(user, path)})


def _python_script(notebook: dict) -> str:
    """The code cells of a notebook as a Python script, cells marked ``# %%``."""
    parts = []
    for cell in notebook.get("cells", []):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        if cell.get("cell_type") == "code":
            parts.append("# %%\n" + source)
        elif cell.get("cell_type") == "markdown":
            parts.append("# %% [markdown]\n" + "\n".join("# " + line for line in source.splitlines()))
    return "\n\n".join(parts) + "\n"


class NotebookHandler(StreamedBodyHandler):
    """``GET``/``PUT api/notebooks/<path>``: a user's own notebook, with its kernel session."""

    def _path(self, path: str) -> str:
        folder, _, filename = path.rpartition("/")
        return join(clean_folder(folder), clean_notebook_name(filename))

    async def get(self, path):
        token = self.bearer_token()
        path = self._path(path)
        async with self.launcher.user_server(token) as user:
            model = await contents.get(self.launcher.hub, user, path)
            if model is None:
                raise OpenBISHubError(f"No notebook at '{path}'.", status=404)
            session = await contents.open_session(self.launcher.hub, user, path)
        self.finish({"data": model, "session": session})

    async def put(self, path):
        token = self.bearer_token()
        path = self._path(path)
        body = self.json_body()
        kind = body.get("type", "notebook")
        if kind != "notebook":
            raise BadRequest(f"Unhandled contents type: {kind}")
        if body.get("format", "json") != "json":
            raise BadRequest("Only format 'json' is supported for notebooks.")
        notebook = _parse_notebook(json.dumps(body.get("content")).encode())
        async with self.launcher.user_server(token) as user:
            folder = path.rpartition("/")[0]
            await contents.ensure_folder(self.launcher.hub, user, folder)
            model = await contents.save(self.launcher.hub, user, path, notebook)
            if body.get("export"):
                script = path[: -len(".ipynb")] + ".py"
                await contents.save(
                    self.launcher.hub, user, script, _python_script(notebook), kind="file", fmt="text"
                )
        model.pop("content", None)
        self.finish(model)


class SessionsHandler(BaseHandler):
    """``GET api/sessions``: the kernel sessions of the token's owner."""

    async def get(self):
        token = self.bearer_token()
        async with self.launcher.user_server(token) as user:
            found = await contents.sessions(self.launcher.hub, user)
        self.finish({"data": found})


class OpenAPIHandler(BaseHandler):
    def get(self):
        self.finish(openapi_document(self.settings["service_prefix"]))


class HealthHandler(BaseHandler):
    def get(self):
        self.finish({"status": "ok"})
