"""``openbis-hub demo``: the whole thing on one machine, in one process tree.

* the openBIS stand-in with demo content (unless ``--openbis-url``), served on
  https (what pybis, the hub and the service talk to) and on plain http (what
  your browser opens, so there is no certificate warning);
* JupyterHub with the openBIS authenticator, the launch service and
  single-user servers as local processes, from the project's
  ``jupyterhub_config.py``;
* an ELN-like page at ``/openbis/webapp/eln/`` that makes exactly the openBIS
  ELN's requests ("More..." -> "New Jupyter notebook").

With ``--openbis-url`` the page is served by a small local server that forwards
its JSON-RPC calls to that openBIS (the real ELN is served by openBIS itself,
so the page has to look same-origin to it).

Ctrl-C stops the hub (which stops the notebook servers), then everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ELN_DIR = Path(__file__).resolve().parent / "standin" / "eln"
ELN_PATH = "/openbis/webapp/eln/"
from openbis_hub.openbis import AS_V3_PATH as AS_PATH  # noqa: E402
from openbis_hub.urls import check_openbis_url  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="openbis-hub demo",
        description="Run openBIS stand-in + JupyterHub + an ELN-like page on this machine.",
    )
    p.add_argument("--port", type=int, default=8000, help="port of JupyterHub (default 8000)")
    p.add_argument(
        "--eln-port", type=int, default=0, help="port of the ELN-like page (plain http; default: any free port)"
    )
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--openbis-url", default=None, help="use this openBIS instead of the stand-in, e.g. https://openbis.example.org"
    )
    p.add_argument("--openbis-ca-bundle", default=None, help="CA file that signed the certificate of --openbis-url")
    p.add_argument(
        "--state-dir",
        default=None,
        help="keep the hub database, users' notebooks and stand-in data here "
        "(default: a temporary directory, removed on exit)",
    )
    p.add_argument("--verbose", action="store_true", help="show the hub's log on the terminal")
    args = p.parse_args(argv)
    if args.openbis_ca_bundle and not args.openbis_url:
        p.error("--openbis-ca-bundle goes with --openbis-url")
    if args.openbis_url:
        try:
            check_openbis_url(args.openbis_url, "--openbis-url")
        except ValueError as e:
            p.error(str(e))
        if args.openbis_ca_bundle and not Path(args.openbis_ca_bundle).is_file():
            p.error(f"--openbis-ca-bundle: no such file: {args.openbis_ca_bundle}")
    return args


def say(message: str = "", end: str = "\n") -> None:
    sys.stdout.write(message + end)
    sys.stdout.flush()


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def port_is_free(port: int, ip: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


HUB_CONFIG = """\
# written by `openbis-hub demo`: the hub's configuration comes from the environment
from openbis_hub.deployment import configure_from_environment

configure_from_environment(get_config())  # noqa: F821
"""


def find_proxy() -> str | None:
    """``configurable-http-proxy``: an ``npm install`` in the current folder or in this
    source checkout, else the one on ``PATH``."""
    for folder in (Path.cwd(), Path(__file__).resolve().parents[2]):
        local = folder / "node_modules" / ".bin" / "configurable-http-proxy"
        if local.exists():
            return str(local)
    return shutil.which("configurable-http-proxy")


# ------------------------------------------------------------------ the ELN page
def profile_js(hub_url: str, demo_users: list[tuple[str, str]], openbis_label: str) -> str:
    """The ELN's two profile settings (``InstanceProfile.js``), plus demo hints."""
    profile = {
        # used verbatim with ?token=... appended (no "?" allowed)
        "jupyterIntegrationServerEndpoint": hub_url + "/services/openbis/",
        # must end with "/": the ELN appends "hub/login?..."
        "jupyterEndpoint": hub_url + "/",
        "demoUsers": [{"user": u, "password": p} for u, p in demo_users],
        "openbisLabel": openbis_label,
    }
    return "window.profile = " + json.dumps(profile, indent=2) + ";\n"


def dataset_link(eln_origin: str) -> str:
    """The link after "Save to openBIS": the dataset's view on the demo's own ELN-like page, in the
    real ELN's form (``?menuUniqueId=null&viewName=showViewDataSetPageFromPermId&viewData=<permId>``)."""
    return f"{eln_origin}{ELN_PATH}?menuUniqueId=null&viewName=showViewDataSetPageFromPermId&viewData={{permId}}"


def demo_logins(demo_users: list[tuple[str, str]]) -> str:
    return "Demo logins (user / password): " + ", ".join(f"{u} / {p}" for u, p in demo_users)


def hub_settings(eln_origin: str, demo_users: list[tuple[str, str]]) -> dict:
    """What the demo with the stand-in tells the hub beyond the deployment's settings: the logins on the
    hub's login page (OPENBIS_HUB_LOGIN_HINT) and where a saved dataset's link opens (OPENBIS_HUB_DATASET_LINK)."""
    return {"OPENBIS_HUB_LOGIN_HINT": demo_logins(demo_users), "OPENBIS_HUB_DATASET_LINK": dataset_link(eln_origin)}


def eln_handlers(profile: str) -> list:
    """Tornado routes for the ELN-like page, with the demo's profile."""
    import tornado.web

    class ProfileHandler(tornado.web.RequestHandler):
        def get(self):
            self.set_header("Content-Type", "application/javascript; charset=UTF-8")
            self.set_header("Cache-Control", "no-store")
            self.finish(profile)

    class RedirectToEln(tornado.web.RequestHandler):
        def get(self):
            self.redirect(ELN_PATH)

    static = {"path": str(ELN_DIR), "default_filename": "index.html"}
    return [
        (r"/", RedirectToEln),
        (r"/openbis/webapp/eln", RedirectToEln),
        (r"/openbis/webapp/eln/profile\.js", ProfileHandler),
        (r"/openbis/webapp/eln/()", tornado.web.StaticFileHandler, static),
        (r"/openbis/webapp/eln/(.+)", tornado.web.StaticFileHandler, static),
    ]


def forwarding_app(profile: str, openbis_url: str, ca_bundle: str | None):
    """The page for an external openBIS: static files plus its JSON-RPC API forwarded."""
    import tornado.web
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

    class ForwardHandler(tornado.web.RequestHandler):
        def check_xsrf_cookie(self):
            pass

        async def post(self):
            request = HTTPRequest(
                openbis_url.rstrip("/") + AS_PATH,
                method="POST",
                body=self.request.body,
                headers={"Content-Type": "application/json"},
                ca_certs=ca_bundle or None,
                request_timeout=60,
            )
            try:
                response = await AsyncHTTPClient().fetch(request, raise_error=False)
            except (OSError, HTTPClientError) as e:
                self.set_status(502)
                self.finish({"error": {"message": f"openBIS at {openbis_url} did not answer: {e}"}})
                return
            self.set_status(response.code if response.code >= 200 else 502)
            self.set_header("Content-Type", response.headers.get("Content-Type", "application/json"))
            self.finish(response.body or b"")

    return tornado.web.Application([(AS_PATH, ForwardHandler)] + eln_handlers(profile))


# ------------------------------------------------------------------ processes
def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux ``/proc``; empty elsewhere)."""
    tree = _proc_children()
    found, todo = set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has finished
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class Hub:
    """JupyterHub as a child process in its own session (Ctrl-C reaches us, and we stop it in order)."""

    def __init__(self, config: Path, env: dict, log_path: Path, verbose: bool):
        self.config, self.env, self.log_path, self.verbose = config, env, log_path, verbose
        self.process: subprocess.Popen | None = None
        self.known: set[int] = set()

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config)],
            cwd=self.env["OPENBIS_HUB_STATE_DIR"],
            env=self.env,
            stdout=None if self.verbose else self._log,
            stderr=None if self.verbose else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def remember_children(self) -> None:
        if self.process is not None:
            self.known |= descendants(self.process.pid)

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 30) -> None:
        if self.process is None:
            return
        self.remember_children()
        if self.process.poll() is None:
            # JupyterHub stops the proxy, the service and the users' servers on SIGTERM
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = [p for p in self.known if alive(p)]
            if self.process.poll() is None:
                left.append(self.process.pid)
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(alive(p) for p in left):
                time.sleep(0.1)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


# ------------------------------------------------------------------ main
async def run(args: argparse.Namespace) -> int:
    import logging

    import tornado.httpserver
    import tornado.netutil

    # the terminal shows progress and problems, not every request
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("openbis_hub_dev.standin.access", "tornado.access"):
        logging.getLogger(name).setLevel(logging.ERROR)

    proxy = find_proxy()
    if not proxy:
        say(
            "openbis-hub demo: configurable-http-proxy not found; run `npm install` in the "
            "openbis-hub folder (or install it on your PATH)."
        )
        return 2
    if not port_is_free(args.port, args.ip):
        say(f"openbis-hub demo: port {args.port} is in use; choose another with --port.")
        return 2

    keep_state = bool(args.state_dir)
    state = Path(args.state_dir).resolve() if keep_state else Path(tempfile.mkdtemp(prefix="openbis-hub-demo-"))
    state.mkdir(parents=True, exist_ok=True)
    # what browsers are told: a wildcard address is not one they can open
    host = "127.0.0.1" if args.ip in ("0.0.0.0", "", "::") else args.ip
    hub_url = f"http://{host}:{args.port}"
    started = time.monotonic()
    standin = None
    servers: list = []
    hub = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def listen(app, port: int):
        sockets = tornado.netutil.bind_sockets(port, args.ip)
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        servers.append(server)
        return sockets[0].getsockname()[1]

    try:
        say("openbis-hub demo")
        if args.openbis_url:
            openbis_url = args.openbis_url.rstrip("/")
            ca_bundle = str(Path(args.openbis_ca_bundle).resolve()) if args.openbis_ca_bundle else ""
            demo_users: list[tuple[str, str]] = []
            profile = profile_js(hub_url, demo_users, openbis_url)
            eln_port = listen(forwarding_app(profile, openbis_url, ca_bundle), args.eln_port)
            eln_origin = f"http://{host}:{eln_port}"
            origins = [eln_origin]
            say(f"  [1/3] openBIS ............... {openbis_url} (yours)")
        else:
            from .standin import StandIn, make_app
            from .standin.store import DEMO_USERS

            say("  [1/3] openBIS stand-in ...... ", end="")
            demo_users = [(u, v[0]) for u, v in DEMO_USERS.items() if u != "admin"] + [("admin", "admin-pw")]
            # the profile names the hub; the page is the same for both doors of the stand-in
            profile = profile_js(hub_url, demo_users, "openBIS stand-in (demo data)")
            standin = StandIn(
                host=args.ip, port=0, https=True, state_dir=state / "openbis", extra_handlers=eln_handlers(profile)
            )
            openbis_url = await standin.start()
            ca_bundle = standin.ca_file or ""
            # the same stand-in on plain http, for browsers (no certificate warning)
            eln_port = listen(make_app(standin.store, eln_handlers(profile)), args.eln_port)
            eln_origin = f"http://{host}:{eln_port}"
            origins = [eln_origin, openbis_url]
            say(f"{openbis_url} (and {eln_origin} for your browser)")

        say("  [2/3] JupyterHub ............ ", end="")
        env = {
            **os.environ,
            "OPENBIS_URL": openbis_url,
            "OPENBIS_CA_BUNDLE": ca_bundle,
            "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
            "OPENBIS_HUB_SPAWNER": "local",
            "OPENBIS_HUB_STATE_DIR": str(state / "hub"),
            "OPENBIS_HUB_BIND_URL": f"http://{args.ip}:{args.port}",
            "OPENBIS_HUB_HUB_PORT": str(free_port(args.ip)),
            "OPENBIS_HUB_PROXY_API_PORT": str(free_port(args.ip)),
            "OPENBIS_HUB_SERVICE_PORT": str(free_port(args.ip)),
            "OPENBIS_HUB_ELN_ORIGINS": " ".join(origins),
            "OPENBIS_HUB_PROXY_COMMAND": proxy,
            # the servers' python (and jupyterhub-singleuser) come from this environment
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        }
        env.update(hub_settings(eln_origin, demo_users) if standin is not None else {})  # login hint, dataset link
        (state / "hub").mkdir(parents=True, exist_ok=True)
        config = state / "hub" / "jupyterhub_config.py"
        config.write_text(HUB_CONFIG)
        hub = Hub(config, env, state / "hub.log", args.verbose)
        hub.start()
        up = await wait_for_hub(hub, hub_url, stop)
        if not up:
            if stop.is_set():
                say("interrupted")
                return 130
            say("failed")
            say(f"JupyterHub did not start; the end of its log ({hub.log_path}):\n{hub.log_tail()}")
            return 1
        say(f" {hub_url}/ (with the launch service at /services/openbis/)")
        say(f"  [3/3] ELN-like page ......... ready in {time.monotonic() - started:.0f}s")
        say()
        say(f"Open the ELN-like page:  {eln_origin}{ELN_PATH}")
        if demo_users:
            say(demo_logins(demo_users))
        else:
            say(f"Log in with your account on {openbis_url}.")
        say("Pick a collection or an object, then More... -> New Jupyter notebook.")
        say(f"Notebooks live in {notebooks_dir(state)}{os.sep}<user>{os.sep}")
        if keep_state:
            say(f"State (hub database, notebooks, openBIS data) is kept in {state}")
        else:
            say(f"State (hub database, notebooks, openBIS data) is in {state}: a temporary directory,")
            say("removed when the demo stops. Keep it with --state-dir DIR.")
        say("Press Ctrl-C to stop.")
        while not stop.is_set():
            if hub.process.poll() is not None:
                say(f"JupyterHub exited ({hub.process.returncode}); the end of its log:\n{hub.log_tail()}")
                return 1
            hub.remember_children()
            try:
                await asyncio.wait_for(stop.wait(), 2)
            except asyncio.TimeoutError:
                pass
        return 0
    finally:
        if hub is not None:
            say("\nStopping JupyterHub and the notebook servers ...")
            await loop.run_in_executor(None, hub.stop)
        for server in servers:
            server.stop()
        if standin is not None:
            await standin.stop()
        if not keep_state:
            shutil.rmtree(state, ignore_errors=True)
        say("Stopped.")


def notebooks_dir(state: Path) -> Path:
    """Where the users' servers keep their notebooks (their home directories under the hub's state)."""
    return state / "hub" / "users"


async def wait_for_hub(hub: Hub, hub_url: str, stop: asyncio.Event, timeout: float = 180) -> bool:
    """Poll the launch service's health through the proxy, showing progress."""
    import httpx

    deadline = time.monotonic() + timeout
    last_dot = time.monotonic()
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline and not stop.is_set():
            if hub.process.poll() is not None:
                return False
            try:
                r = await client.get(f"{hub_url}/services/openbis/api/health")
                if r.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if time.monotonic() - last_dot > 1:
                say(".", end="")
                last_dot = time.monotonic()
            hub.remember_children()
            try:
                await asyncio.wait_for(stop.wait(), 0.3)
            except asyncio.TimeoutError:
                pass
    return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    code = asyncio.run(run(args))
    if code:
        sys.exit(code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
