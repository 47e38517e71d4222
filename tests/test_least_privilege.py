"""A hostile user spies on their own server and tries every credential it received on others.

A user controls their own notebook server: they can put a
``~/.jupyter/jupyter_server_config.py`` into their home that records every
header the server receives, restart the server, and use the product as
usual.  Whatever arrives there must open nothing of anyone else.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from conftest import ISSUED_TOKENS
from eln_client import eln_create, notebook, stop_server, wait_until_ready
from kernel import run_code
from spy import install_spy_code, parse_spy_record, refused, try_everything_on


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
    wait_until_ready(hub, spy_user)
    result = await run_code(
        hub.url, hub.admin_token, spy_user, install_spy_code("~/.jupyter/jupyter_server_config.py", "~/spy.jsonl")
    )
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
        saved = await client.put(
            f"{api}/notebooks/{quote(path)}", json={"content": opened.json()["data"]["content"], "export": True}
        )
        assert saved.status_code == 200, saved.text
        assert (await client.get(f"{api}/sessions")).status_code == 200
    # ... and the browser, following the ELN's link into the notebook
    async with httpx.AsyncClient(follow_redirects=True, timeout=60) as browser:
        page = await browser.get(
            f"{hub.url}/hub/login", params={"token": fresh, "next": f"/user/{spy_user}/notebooks/work/cold.ipynb"}
        )
        assert page.status_code == 200

    home = Path(hub.workdir) / "state" / "users" / spy_user
    tokens, cookies = parse_spy_record((home / "spy.jsonl").read_text())
    minted = [t for t in tokens if t not in (token, fresh)]
    assert len(minted) >= 2, "the spy saw the service's requests and the server's own token"
    assert token not in tokens and fresh not in tokens, "no openBIS token travels to the server"

    for credential in tokens:
        with httpx.Client(timeout=30, headers={"Authorization": f"token {credential}"}) as client:
            attempts = try_everything_on(client, hub.url, "bob", "bob-secrets", token, spy_user)
        for what, response in attempts.items():
            assert refused(response), (what, response.status_code, response.text[:200])
    for cookie in cookies:
        with httpx.Client(timeout=30, headers={"Cookie": cookie}) as client:
            attempts = try_everything_on(client, hub.url, "bob", "bob-secrets", token, spy_user)
        for what in ("another user's model and auth_state", "another user's files"):
            assert refused(attempts[what]), (what, attempts[what].status_code)


async def test_a_user_name_openbis_should_not_report_gives_502_and_no_hub_user(hub, openbis_standin):
    name = "zed" + secrets.token_hex(3)
    openbis_standin.add_user(name, "pw")
    token = openbis_standin.rpc("login", name, "pw")["result"]
    ISSUED_TOKENS.append(token)
    for reported in ["../evil", "a/b", "bad\nname", ""]:
        openbis_standin.report_user_name(name, reported)
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(
                f"{hub.url}/services/openbis/?token={token}&folder=&filename=n.ipynb&test=True", content=b"TEST"
            )
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
    wait_until_ready(hub, "mapped-user")
    token_file = Path(hub.workdir) / "state" / "users" / "mapped-user" / ".pybis" / "127.0.0.1.token"
    fresh = openbis_standin.rpc("login", "Mapped.User", "mapped-pw")["result"]
    ISSUED_TOKENS.append(fresh)
    dry, write = await eln_create(hub, fresh, "warm", "again.ipynb")  # the server is up: a warm click
    assert write.status_code == 200, write.text
    assert token_file.read_text() == fresh, "the running server reads the fresh token from auth_state"
