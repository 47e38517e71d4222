"""A hostile user spies on their own server and tries every credential it received on others.

A user controls their own notebook server: they can put a
``~/.jupyter/jupyter_server_config.py`` into their home that records every
header the server receives, restart the server, and use the product as
usual.  Whatever arrives there must open nothing of anyone else.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest import ISSUED_TOKENS
from kernel import run_code
from eln_client import eln_create, notebook, stop_server

SPY = r'''
# installed by the user: record every credential this server receives
import json, os, tornado.httputil

_record = os.path.expanduser("~/spy.jsonl")
_init = tornado.httputil.HTTPServerRequest.__init__


def _spy(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    headers = self.headers or {}
    with open(_record, "a") as f:
        f.write(json.dumps({"path": self.path, "authorization": headers.get("Authorization"),
                            "cookie": headers.get("Cookie")}) + "\n")


tornado.httputil.HTTPServerRequest.__init__ = _spy
with open(_record, "a") as f:
    f.write(json.dumps({"path": "env", "authorization": "token " + os.environ.get("JUPYTERHUB_API_TOKEN", ""),
                        "cookie": None}) + "\n")
'''


def _install_spy_code() -> str:
    return (
        "import os, pathlib\n"
        "p = pathlib.Path(os.path.expanduser('~/.jupyter'))\n"
        "p.mkdir(exist_ok=True)\n"
        f"(p / 'jupyter_server_config.py').write_text({SPY!r})\n"
        "print('installed')\n"
    )


def _captured(home: Path) -> tuple[set[str], set[str]]:
    tokens, cookies = set(), set()
    for line in (home / "spy.jsonl").read_text().splitlines():
        seen = json.loads(line)
        auth = seen.get("authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in {"token", "bearer"} and value:
            tokens.add(value)
        if seen.get("cookie"):
            cookies.add(seen["cookie"])
    return tokens, cookies


def _refused(response: httpx.Response) -> bool:
    """Nothing of the victim came back: an error, a redirect to a login, or an empty list."""
    if response.status_code in (401, 403, 404):
        return True
    if response.status_code in (301, 302, 303, 307):
        return "/hub/login" in response.headers.get("location", "") or "/hub/" in response.headers.get(
            "location", ""
        )
    return False


@pytest.fixture
def spy_user(openbis_standin):
    name = "mallory" + secrets.token_hex(3)
    openbis_standin.add_user(name, name + "-pw")
    return name


async def test_credentials_a_user_captures_in_their_server_open_nothing_of_others(hub, openbis_standin, spy_user):
    def login(user, password):
        token = openbis_standin.rpc("login", user, password)["result"]
        ISSUED_TOKENS.append(token)
        return token

    victim_token = login("bob", "bob-pw")
    await eln_create(hub, victim_token, "bob-secrets", "plan.ipynb", notebook("secret = 42"))

    # the spy: installed from the user's own kernel, active after a restart
    token = login(spy_user, spy_user + "-pw")
    await eln_create(hub, token, "", "first.ipynb")
    result = await run_code(hub.url, hub.admin_token, spy_user, _install_spy_code())
    assert result["error"] is None, result
    stop_server(hub, spy_user)

    # the product used normally: a cold click, a warm click, a click with a fresh token ...
    dry, write = await eln_create(hub, token, "work", "cold.ipynb")
    assert write.status_code == 200
    await eln_create(hub, token, "work", "warm.ipynb")
    fresh = login(spy_user, spy_user + "-pw")
    await eln_create(hub, fresh, "work", "fresh.ipynb")
    # ... the integrators' API ...
    api = f"{hub.url}/services/openbis/api"
    async with httpx.AsyncClient(timeout=120, headers={"Authorization": f"Bearer {fresh}"}) as client:
        created = await client.post(f"{api}/notebooks", json={"owner": {"object": "/DEMO/STEP1"}, "name": "api"})
        assert created.status_code == 201, created.text
        path = created.json()["path"]
        opened = await client.get(f"{api}/notebooks/{quote(path)}")
        assert opened.status_code == 200, opened.text
        saved = await client.put(f"{api}/notebooks/{quote(path)}",
                                 json={"content": opened.json()["data"]["content"], "export": True})
        assert saved.status_code == 200, saved.text
        assert (await client.get(f"{api}/sessions")).status_code == 200
    # ... and the browser, following the ELN's link into the notebook
    async with httpx.AsyncClient(follow_redirects=True, timeout=60) as browser:
        page = await browser.get(f"{hub.url}/hub/login",
                                 params={"token": fresh, "next": f"/user/{spy_user}/notebooks/work/cold.ipynb"})
        assert page.status_code == 200

    home = Path(hub.workdir) / "state" / "users" / spy_user
    tokens, cookies = _captured(home)
    minted = [t for t in tokens if t != "" and t not in (token, fresh)]
    assert len(minted) >= 2, "the spy saw the service's requests and the server's own token"
    assert token not in tokens and fresh not in tokens, "no openBIS token travels to the server"

    hub_api = f"{hub.url}/hub/api"
    for credential in tokens:
        headers = {"Authorization": f"token {credential}"}
        async with httpx.AsyncClient(timeout=30, headers=headers) as client:
            attempts = {
                "another user's model and auth_state": await client.get(f"{hub_api}/users/bob"),
                "another user's files": await client.get(f"{hub.url}/user/bob/api/contents/bob-secrets"),
                "another user's server": await client.post(f"{hub_api}/users/bob/server"),
                "another user's tokens": await client.post(f"{hub_api}/users/bob/tokens", json={}),
                "user creation": await client.post(f"{hub_api}/users/eve{secrets.token_hex(2)}"),
                "login of users by token": await client.post(f"{hub_api}/openbis/users", json={"token": token}),
            }
            users = await client.get(f"{hub_api}/users")
        for what, response in attempts.items():
            assert _refused(response), (what, response.status_code, response.text[:200])
        assert users.status_code == 403 or {u["name"] for u in users.json()} <= {spy_user}, users.text[:200]
    for cookie in cookies:
        async with httpx.AsyncClient(timeout=30, headers={"Cookie": cookie}) as client:
            files = await client.get(f"{hub.url}/user/bob/api/contents/bob-secrets")
            model = await client.get(f"{hub_api}/users/bob")
        assert _refused(files) and _refused(model), (files.status_code, model.status_code)


async def test_a_user_name_openbis_should_not_report_gives_502_and_no_hub_user(hub, openbis_standin):
    name = "zed" + secrets.token_hex(3)
    openbis_standin.add_user(name, "pw")
    token = openbis_standin.rpc("login", name, "pw")["result"]
    ISSUED_TOKENS.append(token)
    for reported in ["../evil", "a/b", "bad\nname", ""]:
        openbis_standin.report_user_name(name, reported)
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(f"{hub.url}/services/openbis/?token={token}&folder=&filename=n.ipynb&test=True",
                                  content=b"TEST")
        assert r.status_code == 502, (reported, r.status_code, r.text)
        assert "user name" in r.json()["message"]
    with hub.api() as api:
        names = {u["name"] for u in api.get("/users").json()}
    assert not any("evil" in n or "/" in n or "\n" in n for n in names)


async def test_warm_click_with_a_fresh_token_for_a_mapped_user_name(hub, openbis_standin):
    """username_map (and lowercase_usernames): the hub name is not openBIS's, warm clicks still work."""
    openbis_standin.add_user("Mapped.User", "mapped-pw")
    tokens = []
    for folder in ("cold", "warm"):
        tokens.append(openbis_standin.rpc("login", "Mapped.User", "mapped-pw")["result"])
        ISSUED_TOKENS.append(tokens[-1])
        dry, write = await eln_create(hub, tokens[-1], folder, "n.ipynb")
        assert write.status_code == 200, write.text
        assert "/user/mapped-user/" in write.json()["link"]
    token_file = Path(hub.workdir) / "state" / "users" / "mapped-user" / ".pybis" / "127.0.0.1.token"
    assert token_file.read_text() == tokens[-1], "the running server reads the fresh token from auth_state"
