"""HTTP endpoints of the extension, under the server's base URL.

All go through jupyter_server's authentication (a hub token with access to
this server, the user's browser session, or the server token).  Errors are
JSON ``{"message": ...}``; no token ever appears in an answer or a log line.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import posixpath
import tempfile
import time
import uuid

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from openbis_hub.eln_template import defaults_from_notebook, downloaded_datasets, normalize_owner
from openbis_hub.errors import BadRequest, InvalidToken, OpenBISError, OpenBISHubError

from . import downloads, environment, explorer, opening, registration
from .registration import SaveError, expired_token_error

AUTH_RESOURCE = "contents"
MAX_EXTRA_FILES = 100


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

    def openbis_token(self) -> str:
        """The user's own openBIS token (the one pybis in kernels uses); 401 when there is none."""
        self.require_openbis()
        token = self.ext.current_token()
        if not token:
            raise expired_token_error()
        return token

    async def with_openbis(self, action):
        """``await action(client, token)`` with the user's token; a refused token is read again from the hub once."""
        token = self.openbis_token()
        try:
            return await action(self.ext.openbis_client(), token)
        except InvalidToken:
            if await self.ext.refresh_token_from_hub() and self.ext.current_token() not in (None, token):
                try:
                    return await action(self.ext.openbis_client(), self.ext.current_token())
                except InvalidToken:
                    pass
            raise expired_token_error() from None


def openbis_errors(method):
    """Errors of the error model become answers with their own status (never a 500 with a traceback)."""

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except SaveError:
            raise
        except OpenBISHubError as e:
            raise SaveError(status=e.status, message=e.message) from None

    return wrapper


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
        placed = await self.ext.place_waiting()
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
        if not defaults["history_id"]:
            # the first save of this notebook: the browser keeps this id in the notebook's metadata
            defaults["history_id"], defaults["history_id_new"] = str(uuid.uuid4()), True
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
        parents = list(found.get("parents") or [])
        downloaded = downloaded_datasets(nb)
        parents += [d["permId"] for d in downloaded if d["permId"] not in parents]
        defaults = {
            "type": found.get("type") or self.ext.dataset_type,
            "owner": found.get("owner"),
            "parents": parents,
            "downloaded": downloaded,
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
            raise SaveError(status=e.status, message=e.message) from None
        extra_files = self.extra_files(body.get("files"), path)
        fields = {k: settings[k] for k in ("name", "notes", "history_id")}
        await self.check_properties(token, settings["type"], fields, settings["properties_values"])
        attach = body.get("environment", True)
        if not isinstance(attach, bool):
            raise SaveError(status=400, message="environment must be true or false.")
        edited = body.get("edited_cells") or []
        if not isinstance(edited, list) or not all(isinstance(i, int) for i in edited):
            raise SaveError(status=400, message="edited_cells must be a list of cell indices.")

        loop = asyncio.get_running_loop()
        name = posixpath.basename(path)
        env_record = None
        with tempfile.TemporaryDirectory(prefix="openbis-save-") as tmp:
            files = [os.path.join(tmp, name)]
            text = model["text"]
            env_files: dict[str, str] = {}
            if attach:
                env, source = await self.kernel_environment(path, model["nb"])
                state = environment.execution_state(model["nb"], edited)
                kernel_name = ((model["nb"].get("metadata") or {}).get("kernelspec") or {}).get("name")
                env_record = environment.record(env, kernel_name=kernel_name, source=source, state=state, path=path)
                env_files = environment.files(env, env_record)
                # the registered copy says how it was made; the notebook on disk stays as the user saved it
                nb_copy = json.loads(text)
                nb_copy.setdefault("metadata", {}).setdefault("openbis", {})["saved_environment"] = env_record
                text = json.dumps(nb_copy, indent=1, ensure_ascii=False) + "\n"
            with open(files[0], "w", encoding="utf-8") as f:
                f.write(text)
            if self.ext.export_html:
                html = await loop.run_in_executor(None, export_html, model["nb"])
                files.append(os.path.join(tmp, name + ".html"))
                with open(files[1], "w", encoding="utf-8") as f:
                    f.write(html)
            for env_name, content in env_files.items():
                files.append(os.path.join(tmp, env_name))
                with open(files[-1], "w", encoding="utf-8") as f:
                    f.write(content)
            taken = {os.path.basename(f) for f in files}
            for extra in extra_files:
                if os.path.basename(extra) in taken:
                    raise SaveError(
                        status=400, message=f"Two files would be called {os.path.basename(extra)!r} in the dataset."
                    )
                taken.add(os.path.basename(extra))
                files.append(extra)
            result = await loop.run_in_executor(
                None,
                lambda: registration.register_dataset(
                    self.ext.openbis_url,
                    token,
                    self.ext.verify_ca,
                    type_code=settings["type"],
                    owner=settings["owner"],
                    parents=settings["parents"],
                    fields=fields,
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
            "history_id": settings["history_id"],
            "environment": env_record,
        }

    def extra_files(self, paths, notebook_path: str) -> list[str]:
        """Workspace files to register besides the notebook: checked to be regular files inside the root."""
        if paths is None:
            return []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise SaveError(status=400, message="files must be a list of paths in your notebook directory.")
        if len(paths) > MAX_EXTRA_FILES:
            raise SaveError(status=400, message=f"At most {MAX_EXTRA_FILES} extra files per dataset.")
        out = []
        for rel in paths:
            folder, name = posixpath.split(rel.strip("/"))
            try:
                directory, _ = downloads.safe_folder(self.ext.root_dir, folder)
            except OpenBISHubError as e:
                raise SaveError(status=400, message=f"{rel!r}: {e.message}") from None
            full = os.path.join(directory, name)
            if not name or name.startswith(".") or not os.path.isfile(full) or os.path.islink(full):
                raise SaveError(status=400, message=f"{rel!r} is not a file in your notebook directory.")
            if rel.strip("/") == notebook_path:
                continue  # the notebook is always in the dataset
            out.append(full)
        return out

    async def check_properties(self, token: str, type_code: str, fields: dict, values: dict) -> None:
        """Refuse before any upload: an unknown type, missing mandatory properties, values of the wrong data type."""

        async def find(client, token):
            return await explorer.dataset_types(client, token)

        types = await self.with_openbis(find)
        found = next((t for t in types if t["code"].upper() == type_code.upper()), None)
        if found is None:
            raise SaveError(status=400, message=f"openBIS has no dataset type {type_code!r}.")
        props = registration.plan_properties(found["code"], found["properties"], fields, values)
        invalid = explorer.invalid_values(found["properties"], props)
        if invalid:
            listed = "; ".join(f"{code} {why}" for code, why in invalid.items())
            raise SaveError(
                status=400, message=f"Some properties of {found['code']} are not valid: {listed}.", invalid=invalid
            )

    async def kernel_environment(self, path: str, nb: dict) -> tuple[dict | None, str]:
        """The packages of the notebook's kernel: the running one, else its kernelspec's interpreter."""
        sessions = await ensure_async(self.session_manager.list_sessions())
        kernel_id = next((s["kernel"]["id"] for s in sessions if s.get("path") == path and s.get("kernel")), None)
        if kernel_id:
            env = await environment.from_kernel(self.kernel_manager, kernel_id)
            if env:
                return env, "running kernel"
        name = ((nb.get("metadata") or {}).get("kernelspec") or {}).get("name")
        python = environment.kernelspec_python(self.kernel_spec_manager, name)
        if python:
            env = await environment.from_interpreter(python)
            if env:
                return env, "kernelspec"
        return None, "unavailable"


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


# --------------------------------------------------------------------------- the openBIS side panel


class SessionHandler(BaseHandler):
    """``GET openbis/session``: is the user's openBIS token valid, whose is it, when was it renewed."""

    @web.authenticated
    @authorized
    @openbis_errors
    async def get(self):
        self.require_openbis()
        answer = {
            "openbis_url": self.ext.openbis_url,
            "user": self.ext.hub_user,
            "valid": False,
            "personal_access_token": None,
            "renewed_at": self.ext.token_written_at(),
            "checked_at": time.time(),
            "refresh_interval": self.ext.token_refresh_interval,
            "message": None,
        }
        token = self.ext.current_token()
        if not token:
            answer["message"] = "No openBIS token: reopen this notebook from the openBIS ELN."
            self.finish(answer)
            return
        client = self.ext.openbis_client()
        try:
            # isSessionActive does not extend the session: an open panel does not keep it alive
            if not await client.is_session_active(token):
                raise InvalidToken("not active")
            info = await client.session_information(token)
        except InvalidToken:
            answer["message"] = expired_token_error().message
        else:
            answer.update(
                {"valid": True, "openbis_user": info.user_id, "personal_access_token": info.personal_access_token}
            )
        self.finish(answer)


class TreeHandler(BaseHandler):
    """``GET openbis/tree?kind=&id=&start=&count=``: the children of one node of the browse tree."""

    @web.authenticated
    @authorized
    @openbis_errors
    async def get(self):
        kind = self.get_query_argument("kind", "root")
        node_id = None
        if kind != "root":
            explorer.check_kind(kind)
            node_id = explorer.check_id(self.get_query_argument("id", None))
        start, count = explorer.page_args(self.get_query_argument("start", "0"), self.get_query_argument("count", None))
        self.finish(await self.with_openbis(lambda c, t: explorer.children(c, t, kind, node_id, start, count)))


class SearchHandler(BaseHandler):
    """``GET openbis/search?q=&kinds=collection,object,dataset``: by code, name or permId."""

    @web.authenticated
    @authorized
    @openbis_errors
    async def get(self):
        query = self.get_query_argument("q", "")
        kinds = [k for k in self.get_query_argument("kinds", "").split(",") if k] or None
        self.finish(await self.with_openbis(lambda c, t: explorer.search(c, t, query, kinds)))


class EntityHandler(BaseHandler):
    """``GET openbis/entity?kind=&id=``: all properties, parents and children of one entity."""

    @web.authenticated
    @authorized
    @openbis_errors
    async def get(self):
        kind = explorer.check_kind(self.get_query_argument("kind", None))
        entity_id = explorer.check_id(self.get_query_argument("id", None))
        self.finish(await self.with_openbis(lambda c, t: explorer.entity(c, t, kind, entity_id)))


class FilesHandler(BaseHandler):
    """``GET openbis/files?permId=``: the files of a dataset."""

    @web.authenticated
    @authorized
    @openbis_errors
    async def get(self):
        perm_id = explorer.check_id(self.get_query_argument("permId", None), "permId")

        async def files(client, token):
            found = await client.get(
                token,
                "DataSets",
                [{"@type": explorer.V3["dataset"][3], "permId": perm_id}],
                {"@type": explorer.V3["dataset"][2]},
            )
            if perm_id not in found:
                raise explorer.NotFound(f"openBIS has no dataset {perm_id} (any more).")
            return await client.dataset_files(token, perm_id)

        self.finish({"permId": perm_id, "files": await self.with_openbis(files)})


class TypesHandler(BaseHandler):
    """``GET openbis/types``: the dataset types with their property assignments and vocabularies."""

    @web.authenticated
    @authorized
    @openbis_errors
    async def get(self):
        types = await self.with_openbis(explorer.dataset_types)
        self.finish({"types": types, "default": self.ext.dataset_type})


class DownloadsHandler(BaseHandler):
    """``POST openbis/downloads {"datasets": [...], "folder", "wait"}``: datasets into the workspace.

    Everything that can fail early (folder, datasets, files, free space, token)
    is checked before the answer ``202 {id, state, ...}``; ``GET
    openbis/downloads/<id>`` reports the progress; ``"wait": true`` answers when done.
    """

    @web.authenticated
    @authorized
    @openbis_errors
    async def post(self):
        body = self.json_body()
        wait = body.get("wait", False)
        if not isinstance(wait, bool):
            raise BadRequest("wait must be true or false.")
        job = await self.with_openbis(lambda c, t: downloads.plan(c, t, self.ext.root_dir, body))
        self.ext.downloads.start(self.ext.openbis_client(), self.openbis_token(), job)
        self.log.info("openbis-hub: downloading %d file(s) into %r", job.files_total, job.folder or "/")
        if wait:
            await asyncio.shield(job.task)
            if job.error:
                raise SaveError(status=job.error["status"], message=job.error["message"], download=job.status())
        self.set_status(200 if wait else 202)
        self.finish(job.status())


class DownloadHandler(BaseHandler):
    """``GET openbis/downloads/<id>``: how far a download got."""

    @web.authenticated
    @authorized
    @openbis_errors
    async def get(self, job_id):
        self.finish(self.ext.downloads.get(job_id).status())


class OpenHandler(BaseHandler):
    """``POST openbis/open {"permId", "file", "folder", "name", "keep_history"}``: a stored notebook into the workspace."""

    @web.authenticated
    @authorized
    @openbis_errors
    async def post(self):
        body = self.json_body()
        opened = await self.with_openbis(lambda c, t: opening.open_from_dataset(c, t, self.ext.root_dir, body))
        self.log.info("openbis-hub: opened a notebook of dataset %s as %s", opened["permId"], opened["path"])
        self.finish(opened)
