"""Tornado application of the openBIS stand-in: AS and DSS JSON-RPC, session-workspace
upload, fast download (file-transfer v1/v2), classic download, plus the test-control
endpoints under ``/standin/`` (which are NOT part of openBIS)."""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import os
import ssl
import struct
import traceback
import uuid
from pathlib import Path
from urllib.parse import unquote

import tornado.httpserver
import tornado.netutil
import tornado.web

from .api import Api, MethodNotFound
from .dto import jackson
from .store import INVALID_SESSION, StandInFault, Store

log = logging.getLogger("openbis_hub_dev.standin")
access_log = logging.getLogger("openbis_hub_dev.standin.access")

from openbis_hub.openbis import AS_V3_PATH as AS_PATH  # noqa: E402  (the one place the path is written)

DSS_PATH = "/datastore_server/rmi-data-store-server-v3.json"
CHUNK_SIZE = 1024 * 1024


def _log_request(handler: tornado.web.RequestHandler):
    """Access log WITHOUT query strings (the upload/download URLs carry sessionID=)."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING
    access_log.log(
        level,
        "%d %s %s %.1fms",
        status,
        handler.request.method,
        handler.request.path,
        1000.0 * handler.request.request_time(),
    )


class Base(tornado.web.RequestHandler):
    @property
    def store(self) -> Store:
        return self.settings["standin_store"]

    @property
    def api(self) -> Api:
        return self.settings["standin_api"]

    def base_url(self) -> str:
        public = self.settings.get("standin_public_url")
        if public:
            return public.rstrip("/")
        return f"{self.request.protocol}://{self.request.host}"

    async def openbis_delay(self):
        if self.store.delay > 0:
            await asyncio.sleep(self.store.delay)

    def check_xsrf_cookie(self):
        pass


class JsonRpcHandler(Base):
    server = "as"

    async def post(self):
        await self.openbis_delay()
        self.set_header("Content-Type", "application/json-rpc")
        try:
            req = json.loads(self.request.body or b"")
            method = req["method"]
            params = req.get("params") or []
            if not isinstance(params, list):
                params = [params]
        except (ValueError, KeyError, TypeError):
            self.set_status(400)
            self.finish(
                json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}})
            )
            return
        rid = req.get("id")
        self.store.count(method)
        try:
            if self.server == "as":
                result = self.api.call_as(method, params, self.base_url())
            else:
                result = self.api.call_dss(method, params, self.base_url())
            body = {"jsonrpc": "2.0", "id": rid, "result": jackson(result)}
        except MethodNotFound:
            self.set_status(404)
            body = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "method not found", "data": None}}
        except StandInFault as e:
            body = {
                "jsonrpc": "2.0",
                "id": rid,
                "error": {
                    "code": 0,
                    "message": e.message,
                    "data": {
                        "exceptionTypeName": e.type_name,
                        "message": e.message,
                        "stackTrace": f"{e.type_name}: {e.message}\n\tat openbis-hub stand-in",
                    },
                },
            }
        except Exception as e:  # a bug in the stand-in; report it like openBIS would
            log.exception("stand-in failed on %s", method)
            msg = f"{type(e).__name__}: {e}"
            body = {
                "jsonrpc": "2.0",
                "id": rid,
                "error": {
                    "code": 0,
                    "message": msg,
                    "data": {
                        "exceptionTypeName": "java.lang.RuntimeException",
                        "message": msg,
                        "stackTrace": traceback.format_exc(),
                    },
                },
            }
        self.finish(json.dumps(body))


class DssJsonRpcHandler(JsonRpcHandler):
    server = "dss"


class UploadHandler(Base):
    """``POST /datastore_server/session_workspace_file_upload?filename=..&id=..&startByte=..
    &endByte=..&emptyFolder=..&sessionID=..`` with the raw bytes as body."""

    async def post(self):
        await self.openbis_delay()
        self.store.count_http("session_workspace_file_upload")
        token = self.get_query_argument("sessionID", None)
        filename = self.get_query_argument("filename", "")
        try:
            ws = self.store.workspace_for(token)
        except StandInFault as e:
            self.set_status(500)
            self.finish({"error": e.message, "exceptionTypeName": e.type_name})
            return
        filename = unquote(filename).strip("/")
        if not filename or ".." in filename.split("/"):
            self.set_status(400)
            self.finish({"error": f"Invalid file name: {filename}"})
            return
        empty_folder = self.get_query_argument("emptyFolder", "False").lower() == "true"
        start = int(self.get_query_argument("startByte", "0") or 0)
        end = self.get_query_argument("endByte", "0")
        data = self.request.body or b""
        if not empty_folder:
            buf = ws.setdefault(filename, bytearray())
            if len(buf) < start:
                buf.extend(b"\0" * (start - len(buf)))
            buf[start : start + len(data)] = data
        self.set_header("Content-Type", "text/json")
        self.finish(
            json.dumps(
                {
                    "id": self.get_query_argument("id", "1"),
                    "startByte": str(start),
                    "endByte": str(end),
                    "filename": filename,
                    "emptyFolder": str(empty_folder).lower(),
                    "size": len(data),
                    "status": "ok",
                }
            )
        )


def _chunk(seq: int, item_id: str, path: str, is_dir: bool, offset: int, payload: bytes) -> bytes:
    item_b, path_b = item_id.encode(), path.encode()
    header = (
        struct.pack(">IHBHQI", seq, len(item_b), 1 if is_dir else 0, len(path_b), offset, len(payload))
        + item_b
        + path_b
    )
    return header + struct.pack(">Q", binascii.crc32(header)) + payload + struct.pack(">Q", binascii.crc32(payload))


class FileTransferHandler(Base):
    """Fast-download server (``/datastore_server/file-transfer``), protocol v1 and v2."""

    def _sessions(self) -> dict:
        return self.settings["standin_downloads"]

    async def post(self):
        await self.openbis_delay()
        self.store.count_http("file-transfer")
        try:
            raw = json.loads(self.request.body or b"{}")
            args = {k: (v[0] if isinstance(v, list) and v else v) for k, v in raw.items()}
        except ValueError:
            args = {k: v[0].decode() for k, v in self.request.body_arguments.items()}
        method = args.get("method")
        try:
            if method == "startDownloadSession":
                return self._start(args)
            if method == "queue":
                sess = self._get(args)
                for rng in str(args.get("ranges", "")).split(","):
                    rng = rng.strip()
                    if rng:
                        a, _, b = rng.partition(":")
                        sess["queue"].extend(range(int(a), int(b or a) + 1))
                self.finish(b"")
                return
            if method == "download":
                sess = self._get(args)
                n = max(1, int(args.get("numberOfChunks", 1) or 1))
                out = b""
                for _ in range(n):
                    if not sess["queue"]:
                        break
                    out += sess["chunks"][sess["queue"].pop(0)]
                self.set_header("Content-Type", "application/octet-stream")
                self.finish(out)
                return
            if method == "finishDownloadSession":
                self._sessions().pop(args.get("downloadSessionId"), None)
                self.finish(b"")
                return
            raise StandInFault(f"Unknown method '{method}'.")
        except StandInFault as e:
            self.set_header("Content-Type", "application/json")
            self.finish(
                json.dumps({"error": {"message": e.message, "exceptionTypeName": e.type_name}, "retriable": False})
            )

    def _get(self, args):
        sess = self._sessions().get(args.get("downloadSessionId"))
        if sess is None:
            raise StandInFault("Download session does not exist.")
        return sess

    def _start(self, args):
        token = args.get("userSessionId")
        self.store.get_session(token)
        items = args.get("downloadItemIds") or ""
        if args.get("version") and str(items).startswith("["):
            item_ids = json.loads(items)
        elif isinstance(items, list):
            item_ids = items
        else:
            item_ids = [i.strip() for i in str(items).split(",") if i.strip()]
        chunks, ranges = [], {}
        for item in item_ids:
            perm_id, _, path = item.partition("/")
            ds = self.store.datasets.get(perm_id)
            if ds is None:
                raise StandInFault(f"Data set {perm_id} does not exist.")
            first = len(chunks)
            if path in ds.files:
                data = ds.files[path]
                for off in range(0, max(len(data), 1), CHUNK_SIZE):
                    chunks.append(_chunk(len(chunks), item, path, False, off, data[off : off + CHUNK_SIZE]))
            elif path in ds.directories() or path == "":
                chunks.append(_chunk(len(chunks), item, path, True, 0, b""))
                for fpath, data in sorted(ds.files.items()):
                    if path == "" or fpath.startswith(path + "/"):
                        for off in range(0, max(len(data), 1), CHUNK_SIZE):
                            chunks.append(_chunk(len(chunks), item, fpath, False, off, data[off : off + CHUNK_SIZE]))
            else:
                raise StandInFault(f"File {path} does not exist in data set {perm_id}.")
            ranges[item] = f"{first}:{len(chunks) - 1}"
        wished = int(args.get("wishedNumberOfStreams", 4) or 4)
        sid = str(uuid.uuid4())
        self._sessions()[sid] = {"chunks": chunks, "queue": []}
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {
                    "downloadSessionId": sid,
                    "ranges": ranges,
                    "streamIds": [f"{sid}-{i}" for i in range(1, max(1, min(wished, 10)) + 1)],
                }
            )
        )


class DownloadHandler(Base):
    """Classic ``GET /datastore_server/<permId>/<path>?sessionID=<token>``."""

    async def get(self, perm_id, path):
        await self.openbis_delay()
        self.store.count_http("download")
        try:
            self.store.get_session(self.get_query_argument("sessionID", None))
        except StandInFault as e:
            self.set_status(401 if e.type_name == INVALID_SESSION else 500)
            self.set_header("Content-Type", "text/plain")
            self.finish(e.message)
            return
        ds = self.store.datasets.get(perm_id)
        path = unquote(path)
        if ds is None or path not in ds.files:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f'attachment; filename="{os.path.basename(path)}"')
        self.finish(ds.files[path])


# ---------------------------------------------------------------- /standin/ (not openBIS)
class StatsHandler(Base):
    def get(self):
        self.set_header("Cache-Control", "no-store")
        self.finish(self.store.stats_json())


class StatsResetHandler(Base):
    def post(self):
        self.store.reset_stats()
        self.finish({"ok": True})


class ControlHandler(Base):
    def get(self):
        self.finish({"delay": self.store.delay, "session_timeout": self.store.session_timeout})

    def post(self):
        body = json.loads(self.request.body or b"{}")
        if "delay" in body:
            self.store.delay = max(0.0, float(body["delay"] or 0))
        if "session_timeout" in body:
            self.store.session_timeout = float(body["session_timeout"])
        if "reported_user_names" in body:
            self.store.reported_user_names.update(body["reported_user_names"])
        self.finish({"delay": self.store.delay, "session_timeout": self.store.session_timeout})


class UsersHandler(Base):
    """``POST /standin/users {"id", "password"}``: add an openBIS user (tests make their own)."""

    def post(self):
        body = json.loads(self.request.body or b"{}")
        if not body.get("id") or not body.get("password"):
            raise tornado.web.HTTPError(400, "id and password needed")
        self.store.add_user(body["id"], body["password"])
        self.finish({"id": body["id"]})


class IssuedHandler(Base):
    """``GET /standin/issued``: every session token and PAT handed out, for the tests' log scan."""

    def get(self):
        self.set_header("Cache-Control", "no-store")
        self.finish({"tokens": list(self.store.issued)})


class ExpireHandler(Base):
    def post(self):
        body = json.loads(self.request.body or b"{}")
        user = body.get("user")
        if not user:
            raise tornado.web.HTTPError(400, "user missing")
        n = self.store.expire_user(user, pats=bool(body.get("pats")))
        self.finish({"user": user, "expired": n})


class DatasetsHandler(Base):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(self.store.datasets_json()))


class RootHandler(Base):
    def get(self):
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"openBIS stand-in (openbis-hub test double, not openBIS)\nAS:  {AS_PATH}\nDSS: {DSS_PATH}\n")


def make_app(store: Store, extra_handlers=None, public_url: str | None = None, **settings) -> tornado.web.Application:
    """Build the tornado application.  ``extra_handlers`` (tornado URL specs) come first,
    e.g. ``[(r"/openbis/webapp/eln/(.*)", StaticFileHandler, {"path": ...})]``."""
    handlers = list(extra_handlers or []) + [
        (r"/", RootHandler),
        (AS_PATH, JsonRpcHandler),
        (r"/openbis" + AS_PATH, JsonRpcHandler),  # tolerated alias
        (r"/openbis/rmi-application-server-v3.json", JsonRpcHandler),
        (DSS_PATH, DssJsonRpcHandler),
        (r"/datastore_server/session_workspace_file_upload", UploadHandler),
        (r"/datastore_server/file-transfer", FileTransferHandler),
        (r"/datastore_server/(\d+-\d+)/(.+)", DownloadHandler),
        (r"/standin/stats", StatsHandler),
        (r"/standin/stats/reset", StatsResetHandler),
        (r"/standin/control", ControlHandler),
        (r"/standin/expire", ExpireHandler),
        (r"/standin/users", UsersHandler),
        (r"/standin/issued", IssuedHandler),
        (r"/standin/datasets", DatasetsHandler),
    ]
    return tornado.web.Application(
        handlers,
        standin_store=store,
        standin_api=Api(store),
        standin_downloads={},
        standin_public_url=public_url,
        log_function=_log_request,
        **settings,
    )


def default_eln_handlers() -> list:
    """Serve ``dev/openbis_hub_dev/standin/eln/`` at ``/openbis/webapp/eln/`` if it exists."""
    eln = Path(__file__).parent / "eln"
    if not eln.is_dir():
        return []
    return [
        (
            r"/openbis/webapp/eln/?()",
            tornado.web.StaticFileHandler,
            {"path": str(eln), "default_filename": "index.html"},
        ),
        (
            r"/openbis/webapp/eln/(.+)",
            tornado.web.StaticFileHandler,
            {"path": str(eln), "default_filename": "index.html"},
        ),
    ]


def drop_internal_namespace(store: Store) -> None:
    """The ELN's master data as openBIS 6 and 7 have it: ``NAME`` and ``HISTORY_ID``, no ``$``.

    openBIS 20.10 and older keep the ELN's own property types in the internal namespace
    (``$NAME``, ``$HISTORY_ID``); from openBIS 6 the ELN drops the prefix
    (``profile.getInternalNamespacePrefix()`` is empty), and so do its notebooks' save cells
    (``props={'name': ..., 'notes': ..., 'history_id': ...}``).  pybis checks property codes
    against the type's assignments, so each generation of cells runs on its own openBIS.
    """
    renamed = {code: code[1:] for code in store.property_types if code.startswith("$")}
    for old, new in renamed.items():
        prop = store.property_types.pop(old)
        prop.code = new
        store.property_types[new] = prop
    for entity_type in store.types.values():
        entity_type.assignments = [(renamed.get(code, code), m) for code, m in entity_type.assignments]
    for entity in [*store.experiments.values(), *store.samples.values(), *store.datasets.values()]:
        entity.properties = {renamed.get(code, code): v for code, v in entity.properties.items()}
    store.mandatory = {t: {renamed.get(c, c) for c in codes} for t, codes in store.mandatory.items()}


class StandIn:
    """A running stand-in inside the current asyncio loop.

    >>> s = StandIn(state_dir="/tmp/x")          # https with a self-signed CA by default
    >>> await s.start(); s.url, s.ca_file
    >>> await s.stop()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        https: bool = True,
        state_dir: str | os.PathLike | None = None,
        session_timeout: float = 3600,
        extra_handlers=None,
        public_url: str | None = None,
        tls_hosts=(),
        store: Store | None = None,
        internal_namespace: bool = True,
        **store_kwargs,
    ):
        self.host = host
        self.port = port
        self.https = https
        self.state_dir = Path(state_dir) if state_dir else None
        self.store = store or Store(session_timeout=session_timeout, state_dir=self.state_dir, **store_kwargs)
        if not internal_namespace:
            drop_internal_namespace(self.store)
        self.extra_handlers = list(extra_handlers or []) + default_eln_handlers()
        self.public_url = public_url
        self.tls_hosts = tuple(tls_hosts)
        self.ca_file: str | None = None
        self.url: str | None = None
        self._server = None

    async def start(self) -> str:
        ssl_ctx = None
        if self.https:
            if self.state_dir is None:
                import tempfile

                self.state_dir = Path(tempfile.mkdtemp(prefix="openbis-standin-"))
            from .tls import ensure_tls

            hosts = list(self.tls_hosts)
            if self.host not in ("0.0.0.0", "::", ""):
                hosts.append(self.host)
            tls = ensure_tls(self.state_dir / "tls", hosts=hosts)
            self.ca_file = tls.ca_file
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(tls.cert_file, tls.key_file)
        app = make_app(self.store, self.extra_handlers, public_url=self.public_url)
        sockets = tornado.netutil.bind_sockets(self.port, self.host)
        self.port = sockets[0].getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(app, ssl_options=ssl_ctx, max_body_size=1024**3, xheaders=False)
        self._server.add_sockets(sockets)
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in shown:
            shown = f"[{shown}]"
        self.url = f"{'https' if self.https else 'http'}://{shown}:{self.port}"
        return self.url

    async def stop(self):
        if self._server is not None:
            self._server.stop()
            try:
                await asyncio.wait_for(self._server.close_all_connections(), 5)
            except asyncio.TimeoutError:
                pass
            self._server = None


async def serve(
    port: int = 0,
    host: str = "127.0.0.1",
    https: bool = True,
    state_dir=None,
    session_timeout: float = 3600,
    ready=None,
    **kwargs,
):
    """Run a stand-in until cancelled.  ``ready(standin)`` is called once listening."""
    s = StandIn(host=host, port=port, https=https, state_dir=state_dir, session_timeout=session_timeout, **kwargs)
    await s.start()
    if ready is not None:
        ready(s)
    try:
        await asyncio.Event().wait()
    finally:
        await s.stop()
