"""HTTP handlers of the launch service.

Every answer is JSON; errors are ``{"status": ..., "message": ...}`` and never
carry a token or a traceback.

Every request is refused before any work if it should be: a browser request
from a page that is not an allowed ELN origin gets 403, a bad token 401 (or
429 after many), all before a byte of the body is read.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import sys
from urllib.parse import quote

import nbformat
from tornado import web

from ..eln_template import check_dataset_id, eln_notebook, make_run_all_safe, note_taken_name, validate_request
from ..errors import BadRequest, HubAPIError, OpenBISHubError, PayloadTooLarge, ServerUnreachable, Unauthorized
from . import contents
from .eln_query import parse_eln_query
from .openapi import openapi_document
from .paths import clean_folder, clean_notebook_name, join

log = logging.getLogger("openbis_hub.service")

MAX_JSON_DEPTH = 64
EXPORT_MARKER = "# Exported by openbis-hub from "


class Forbidden(OpenBISHubError):
    status = 403


class Conflict(OpenBISHubError):
    status = 409


class BaseHandler(web.RequestHandler):
    """JSON errors, CORS for the ELN's origins, no query strings in logs."""

    #: whether requests must carry an openBIS token (checked in ``prepare``)
    needs_token = True
    #: a request refused before its body was read leaves the connection unusable:
    #: tornado closes it, so the answer must say so, or the proxy reuses it and fails
    refused_before_body = False

    @property
    def launcher(self):
        return self.settings["launcher"]

    def request_summary(self) -> str:
        # the ELN puts the openBIS token in the query string: never log it
        return f"{self.request.method} {self.request.path} ({self.client_address})"

    @property
    def client_address(self) -> str:
        """The browser's address: the proxy's ``X-Forwarded-For`` only when the peer is a trusted proxy."""
        peer = self.request.remote_ip or ""
        trusted = self.settings["trusted_proxies"]
        if peer not in trusted:
            return peer
        # from the right: each trusted proxy appended the address it saw; the first
        # address that is not one of them is the client (a reverse proxy in front of the
        # hub's proxy counts once it is listed in trusted_proxies)
        hops = [h.strip() for h in self.request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            if hop not in trusted:
                return hop
        return self.request.headers.get("X-Real-Ip", "").strip() or (hops[0] if hops else peer)

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        origin = self.request.headers.get("Origin")
        if origin and origin in self.settings["eln_origins"]:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Credentials", "true")
        self.add_header("Vary", "Origin")

    def check_origin(self) -> None:
        """A browser request from a page that is not an allowed ELN: 403 at once."""
        origin = self.request.headers.get("Origin")
        if origin is not None and origin not in self.settings["eln_origins"]:
            raise Forbidden(
                f"This page ({origin[:100]}) may not use the openBIS notebook service."
                " The administrator can allow it in OPENBIS_HUB_ELN_ORIGINS."
            )

    def openbis_token(self) -> str:
        """The openBIS token of the request (``Authorization: Bearer <token>``)."""
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in {"bearer", "token"} or not token.strip():
            error = Unauthorized("No auth information found")
            error.extra = {"error": "unauthorized"}
            raise error
        return token.strip()

    async def prepare(self):
        self.check_origin()
        if self.request.method == "OPTIONS" or not self.needs_token:
            return
        self.user = await self.launcher.identify(self.openbis_token(), self.client_address)

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
        """The one place errors become answers: ``{"status", "message"}``, never a traceback."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if self.refused_before_body:
            self.set_header("Connection", "close")
        if isinstance(exc, OpenBISHubError):
            message = exc.message
            for name, value in getattr(exc, "headers", {}).items():
                self.set_header(name, value)
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code >= 500:
            message = "Internal error of the openBIS launch service; the administrator finds details in its log."
        else:
            message = self._reason
        self.finish({"status": status_code, "message": message, **getattr(exc, "extra", {})})

    def _handle_request_exception(self, e):
        # tornado's hook for exceptions raised by handlers; our errors are expected, not logged as crashes
        if isinstance(e, OpenBISHubError):
            log.warning("%s -> %s %s", self.request_summary(), e.status, e.message)
            if not self._finished:
                self.send_error(e.status, exc_info=sys.exc_info())
            return
        super()._handle_request_exception(e)

    def log_exception(self, typ, value, tb):
        if isinstance(value, web.HTTPError):
            log.warning("%s -> %s", self.request_summary(), value.status_code)
        else:
            log.error("Uncaught error in %s", self.request_summary(), exc_info=(typ, value, tb))

    def notebook_link(self, user: str, path: str) -> str:
        base = self.settings["public_url"] or f"{self.request.protocol}://{self.request.host}"
        return f"{base.rstrip('/')}/user/{quote(user, safe='')}/notebooks/{quote(path, safe='/')}"


@web.stream_request_body
class StreamedBodyHandler(BaseHandler):
    """Reads the body only after ``prepare`` accepted the request; at most ``max_body_size`` bytes."""

    refused_before_body = True  # until prepare() has accepted the request

    async def prepare(self):
        await super().prepare()  # origin and token first: a refused request reads no body
        self.refused_before_body = False
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

    async def json_body(self) -> dict:
        """The body as a JSON object, parsed off the event loop."""
        body = self.body
        return await asyncio.get_running_loop().run_in_executor(None, parse_json_object, body)


def _too_deep(value, limit: int = MAX_JSON_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def parse_json_object(body: bytes) -> dict:
    try:
        value = json.loads(body or b"null")
    except RecursionError:
        raise BadRequest(f"The JSON body is nested too deeply ({MAX_JSON_DEPTH} levels at most).") from None
    except ValueError:
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BadRequest("The body must be a JSON object.")
    if _too_deep(value):
        raise BadRequest(f"The JSON body is nested too deeply ({MAX_JSON_DEPTH} levels at most).")
    return value


def parse_notebook(body: bytes) -> dict:
    """A valid nbformat 4 notebook from ``body``, or BadRequest saying why not."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not UTF-8 text.") from None
    try:
        raw = json.loads(text)
    except RecursionError:
        raise BadRequest(f"The notebook is nested too deeply ({MAX_JSON_DEPTH} levels at most).") from None
    except ValueError:
        raise BadRequest("The body is not a valid Jupyter notebook: it is not JSON.") from None
    if _too_deep(raw):
        raise BadRequest(f"The notebook is nested too deeply ({MAX_JSON_DEPTH} levels at most).")
    try:
        notebook = nbformat.from_dict(raw)
        notebook = nbformat.convert(notebook, 4) if notebook.get("nbformat") != 4 else notebook
        nbformat.validate(notebook)
    except Exception as e:  # nbformat raises several kinds
        reason = getattr(e, "message", None) or (str(e).splitlines() or ["invalid"])[0][:200]
        raise BadRequest(f"The body is not a valid Jupyter notebook: {reason}") from None
    return notebook


def claimed_file_name(notebook: dict) -> str | None:
    """The name the ELN's dry run returned, as the ELN wrote it into the ``fileName`` cell."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code" and (cell.get("metadata") or {}).get("code_cell_id") == "fileName":
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            _, _, value = source.partition("=")
            try:
                name = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
            return name if isinstance(name, str) else None
    return None


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

    async def prepare(self):
        self.needs_token = self.request.method == "POST"
        await super().prepare()

    @property
    def eln_query(self):
        """The ELN's parameters, read as the ELN writes them (see eln_query.py)."""
        if not hasattr(self, "_eln_query"):
            self._eln_query = parse_eln_query(self.request.query)
        return self._eln_query

    def openbis_token(self) -> str:
        token = self.eln_query.token
        if not token:
            raise Unauthorized("The openBIS token is missing (?token=).")
        return token

    async def post(self, *args):
        user = self.user
        query = self.eln_query
        test = (query.test or "False").strip().lower()
        if test not in {"true", "false", "1", "0"}:
            raise BadRequest("The parameter 'test' must be True or False.")
        dry_run = test in {"true", "1"}
        if query.filename is None:
            raise BadRequest("The parameter 'filename' is missing.")
        folder = clean_folder(query.folder)
        filename = clean_notebook_name(query.filename)
        notebook = None
        if not dry_run:
            body = self.body
            notebook = await asyncio.get_running_loop().run_in_executor(None, parse_notebook, body)
            make_run_all_safe(notebook)
        claimed = notebook and claimed_file_name(notebook)
        launcher = self.launcher
        # never wait for a server to start: the ELN opens its window after both answers, and the
        # browser allows that only within a few seconds of the click
        async with launcher.user_server(user, wait=False) as ready:
            blind = None if dry_run else launcher.take_blind(user, folder, filename, claimed)
            chosen, written = None, False
            if ready and blind is None:
                try:
                    chosen, folder_exists = await launcher.choose_name(
                        user, folder, filename, dry_run=dry_run, claimed=claimed
                    )
                    if notebook is not None:
                        # the typed name was taken: the notebook's first cell says which name it got
                        note_taken_name(notebook, folder, filename, chosen)
                        if not folder_exists:
                            await contents.ensure_folder(launcher.hub, user, folder)
                        await contents.save(launcher.hub, user, join(folder, chosen), notebook)
                    written = True
                except ServerUnreachable as e:
                    # listed as running, not answering (its container restarting): as a cold click,
                    # the hub keeps the notebook and the server places it when it is back
                    log.info("%s; the click for %s goes on as for a stopped server", e.message, user)
                    ready = False
            if not written and dry_run:
                chosen = launcher.reserve_blind(user, folder, filename)
            elif not written:
                # its dry run could not see the folder: the server places it, renaming on a clash
                chosen = blind or chosen or launcher.name_for_unseen_write(user, folder, filename)
                note_taken_name(notebook, folder, filename, chosen)
                await launcher.hand_over(user, folder, chosen, notebook, ready=ready)
        path = join(folder, chosen)
        self.finish({"fileName": chosen, "path": path, "link": self.notebook_link(user, path)})


class CreateNotebookHandler(StreamedBodyHandler):
    """``POST api/notebooks``: build the ELN's notebook here and open it in the user's server."""

    async def post(self):
        body = await self.json_body()
        if body.get("from_dataset") is not None:
            await self.open_from_dataset(body)
            return
        owner = body.get("owner")
        if not (isinstance(owner, dict) and len(owner) == 1 and set(owner) <= {"experiment", "object"}):
            raise BadRequest('\'owner\' must be {"experiment": <id>} or {"object": <id>}.')
        if not isinstance(next(iter(owner.values())), str):
            raise BadRequest("The owner's id must be a string.")
        datasets = body.get("datasets") or []
        if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
            raise BadRequest("'datasets' must be a list of dataset permIds.")
        validate_request(owner, datasets)  # formats, and at most MAX_DATASETS
        folder = clean_folder(body.get("folder"))
        name = body.get("name") or "notebook"
        if not isinstance(name, str):
            raise BadRequest("'name' must be a string.")
        filename = clean_notebook_name(name if name.endswith(".ipynb") else name + ".ipynb")
        user = self.user
        async with self.launcher.user_server(user):
            chosen, folder_exists = await self.launcher.choose_name(user, folder, filename, dry_run=False)
            namespace = await eln_namespace(self.launcher.hub, user)
            notebook = eln_notebook(chosen, [{"permId": d} for d in datasets], owner, namespace=namespace)
            make_run_all_safe(notebook)
            if not folder_exists:
                await contents.ensure_folder(self.launcher.hub, user, folder)
            await contents.save(self.launcher.hub, user, join(folder, chosen), notebook)
        path = join(folder, chosen)
        self.set_status(201)
        self.finish({"fileName": chosen, "path": path, "link": self.notebook_link(user, path)})

    async def open_from_dataset(self, body: dict) -> None:
        """``{"from_dataset": permId, "folder", "name", "file", "keep_history"}``: a stored notebook, opened
        as the ELN's "Use Jupyter Notebook as Template" does; the user's server fetches it with the user's
        own token (``POST openbis/open``)."""
        request = {
            "permId": check_dataset_id(body["from_dataset"], "from_dataset"),
            "folder": clean_folder(body.get("folder")),
        }
        keep = body.get("keep_history", False)
        if not isinstance(keep, bool):
            raise BadRequest("'keep_history' must be true or false.")
        request["keep_history"] = keep
        for key in ("name", "file"):
            if body.get(key) is not None:
                if not isinstance(body[key], str):
                    raise BadRequest(f"'{key}' must be a string.")
                request[key] = clean_notebook_name(body[key]) if key == "name" else body[key]
        user = self.user
        async with self.launcher.user_server(user):
            response = await self.launcher.hub.server_request(user, "POST", "openbis/open", json=request)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code == 404:
            raise HubAPIError(str(answer.get("message") or "Not found."), status=404)
        path = answer["path"]
        self.set_status(201)
        self.finish(
            {
                "fileName": path.rsplit("/", 1)[-1],
                "path": path,
                "link": self.notebook_link(user, path),
                "permId": answer.get("permId"),
                "history_id": answer.get("history_id"),
            }
        )


async def eln_namespace(hub, user: str) -> str:
    """``$`` or ``""``: how this openBIS names the ELN's properties of ``ANALYSIS_NOTEBOOK`` (20.10: ``$NAME``,
    6 and 7: ``NAME``), asked of the user's server (it talks to openBIS with the user's token); ``$`` if unknown."""
    try:
        response = await hub.server_request(user, "GET", "openbis/types")
        types = response.json().get("types", []) if response.status_code == 200 else []
    except (HubAPIError, ValueError, AttributeError) as e:
        log.info("The dataset types of %s's openBIS are unknown (%s): the save cell uses '$name'", user, e)
        return "$"
    for dataset_type in types:
        if isinstance(dataset_type, dict) and dataset_type.get("code") == "ANALYSIS_NOTEBOOK":
            codes = {
                str(p.get("code", "")).upper() for p in dataset_type.get("properties") or [] if isinstance(p, dict)
            }
            if "$NAME" not in codes and "NAME" in codes:
                return ""
    return "$"


def python_script(notebook: dict, notebook_name: str) -> str:
    """The code cells of a notebook as a Python script, cells marked ``# %%``.

    The first line marks the file as an export of ``notebook_name``; only a
    file with that mark is ever replaced by a later export.
    """
    parts = [f"{EXPORT_MARKER}{notebook_name}"]
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
        path = self._path(path)
        user = self.user
        async with self.launcher.user_server(user):
            model = await contents.get(self.launcher.hub, user, path)
            if model is None:
                raise OpenBISHubError(f"No notebook at '{path}'.", status=404)
            session = await contents.open_session(self.launcher.hub, user, path)
        self.finish({"data": model, "session": session})

    async def put(self, path):
        path = self._path(path)
        body = await self.json_body()
        kind = body.get("type", "notebook")
        if kind != "notebook":
            raise BadRequest(f"Unhandled contents type: {kind}")
        if body.get("format", "json") != "json":
            raise BadRequest("Only format 'json' is supported for notebooks.")
        content = json.dumps(body.get("content")).encode()
        notebook = await asyncio.get_running_loop().run_in_executor(None, parse_notebook, content)
        script = path[: -len(".ipynb")] + ".py"
        user = self.user
        async with self.launcher.user_server(user):
            if body.get("export"):
                # checked before anything is written: a script of the user's own is never replaced
                existing = await contents.get(self.launcher.hub, user, script, fmt="text")
                if existing is not None and not str(existing.get("content") or "").startswith(EXPORT_MARKER):
                    raise Conflict(
                        f"'{script}' exists and is not an export of this notebook; nothing was written."
                        " Rename or move it, or save without export."
                    )
            folder = path.rpartition("/")[0]
            await contents.ensure_folder(self.launcher.hub, user, folder)
            model = await contents.save(self.launcher.hub, user, path, notebook)
            if body.get("export"):
                text = python_script(notebook, path.rpartition("/")[2])
                await contents.save(self.launcher.hub, user, script, text, kind="file", fmt="text")
        model.pop("content", None)
        self.finish(model)


class SessionsHandler(BaseHandler):
    """``GET api/sessions``: the kernel sessions of the token's owner."""

    async def get(self):
        user = self.user
        async with self.launcher.user_server(user):
            found = await contents.sessions(self.launcher.hub, user)
        self.finish({"data": found})


class OpenAPIHandler(BaseHandler):
    needs_token = False

    def get(self):
        self.finish(openapi_document(self.settings["service_prefix"]))


class HealthHandler(BaseHandler):
    needs_token = False

    def check_origin(self) -> None:
        pass  # health checks come from monitors, never carry data

    def get(self):
        self.finish({"status": "ok"})
