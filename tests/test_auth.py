"""The openBIS authenticator through a real JupyterHub (real HTTP, a cookie jar)."""

from __future__ import annotations

import re
import time

import httpx
import pytest

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}


def browser(hub) -> httpx.Client:
    return httpx.Client(base_url=hub.url, follow_redirects=True, timeout=60)


def test_eln_link_logs_in_and_follows_next(hub, token_for):
    with browser(hub) as b:
        page = b.get("/hub/login", params={"token": token_for("alice"), "next": "/hub/home"})
        assert page.status_code == 200
        assert page.url.path == "/hub/home"
        assert "jupyterhub-session-id" in b.cookies
        me = b.get("/hub/api/user", headers={"Referer": f"{hub.url}/hub/home"})
    assert [r.status_code for r in page.history] == [302]  # no page in between
    assert me.status_code == 200 and me.json()["name"] == "alice"


def test_foreign_next_is_ignored_and_the_token_not_copied(hub, token_for):
    token = token_for("alice")
    with httpx.Client(base_url=hub.url, timeout=60) as b:
        first = b.get("/hub/login", params={"token": token, "next": "https://evil.example/steal"})
    assert first.status_code == 302
    assert "evil.example" not in first.headers["Location"]
    assert token not in first.headers["Location"]


def test_user_name_is_what_openbis_says_case_preserved(hub, token_for):
    with browser(hub) as b:
        page = b.get("/hub/login", params={"token": token_for("Jane.Doe"), "next": "/hub/home"})
    assert page.url.path == "/hub/home"
    with hub.api() as api:
        assert api.get("/users/Jane.Doe").status_code == 200
        assert api.get("/users/jane.doe").status_code == 404


def _bad_tokens(standin):
    alice = standin.rpc("login", "alice", "alice-pw")["result"]
    logged_out = standin.rpc("login", "alice", "alice-pw")["result"]
    standin.rpc("logout", logged_out)
    return {
        "wrong": "bob-261123000000000x0123456789ABCDEF0123456789ABCDEF",
        "forged": "alice-" + alice.split("-", 1)[1][:-4] + "0000",
        "logged out": logged_out,
        "malformed": "not a token at all",
        "empty": "",
        "10 kB": "a" * 10_000,
        "pat-shaped": "$pat-alice-261123000000000x0123456789ABCDEF0123456789ABCDEF",
    }


def test_bad_tokens_are_refused_with_a_clear_page(hub, openbis_standin):
    for kind, token in _bad_tokens(openbis_standin).items():
        with browser(hub) as b:
            page = b.get("/hub/login", params={"token": token, "next": "/hub/home"})
        assert page.status_code in {403}, (kind, page.status_code)
        assert "openBIS" in page.text, kind
        assert "jupyterhub-session-id" not in b.cookies, kind
        if token:
            assert token not in page.text, kind


def test_expired_session_is_refused(hub, token_for, openbis_standin):
    token = token_for("bob")
    openbis_standin.expire("bob")
    with browser(hub) as b:
        page = b.get("/hub/login", params={"token": token})
    assert page.status_code == 403
    assert re.search(r"not valid|expired", page.text)


def _form_login(hub, **fields) -> httpx.Response:
    with browser(hub) as b:
        form = b.get("/hub/login")
        assert all(f'name="{name}"' in form.text for name in ("username", "password", "token"))
        xsrf = b.cookies.get("_xsrf")
        return b.post("/hub/login?next=/hub/home", data={"_xsrf": xsrf, **fields})


def test_username_and_password(hub):
    ok = _form_login(hub, username="alice", password="alice-pw")
    assert ok.status_code == 200 and ok.url.path == "/hub/home"
    wrong = _form_login(hub, username="alice", password="nope")
    assert wrong.status_code == 403
    assert "openBIS" in wrong.text


def test_token_and_session_form_fields(hub, token_for):
    for field in ("token", "session"):
        page = _form_login(hub, **{field: token_for("alice")})
        assert page.status_code == 200 and page.url.path == "/hub/home", field


def test_personal_access_token_logs_in(hub, openbis_standin, token_for):
    session = token_for("alice")
    now = int(time.time() * 1000)
    created = openbis_standin.rpc(
        "createPersonalAccessTokens",
        session,
        [
            {
                "@type": "as.dto.pat.create.PersonalAccessTokenCreation",
                "sessionName": "test-pat",
                "validFromDate": now - 1000,
                "validToDate": now + 3_600_000,
            }
        ],
    )
    pat = created["result"][0]["permId"]
    assert pat.startswith("$pat-alice-")
    with browser(hub) as b:
        page = b.get("/hub/login", params={"token": pat, "next": "/hub/home"})
    assert page.status_code == 200 and page.url.path == "/hub/home"


def test_slow_openbis_gives_unreachable_within_timeout(slow_hub, openbis_standin, token_for):
    token = token_for("alice")
    openbis_standin.set_delay(6)
    try:
        started = time.monotonic()
        with browser(slow_hub) as b:
            page = b.get("/hub/login", params={"token": token})
        elapsed = time.monotonic() - started
    finally:
        openbis_standin.set_delay(0)
    assert page.status_code == 503
    assert "unreachable" in page.text
    assert elapsed < 6


def test_openbis_down_gives_unreachable(down_hub, token_for):
    with browser(down_hub) as b:
        page = b.get("/hub/login", params={"token": token_for("alice")})
    assert page.status_code == 503
    assert "openBIS is unreachable" in page.text
    async_answer = httpx.post(
        f"{down_hub.url}/services/openbis/?token=x-1&folder=f&filename=n.ipynb&test=True", content=b"TEST", timeout=30
    )
    assert async_answer.status_code == 502
    assert "unreachable" in async_answer.json()["message"]


@pytest.mark.parametrize("missing", ["OPENBIS_URL", "JUPYTERHUB_CRYPT_KEY"])
def test_hub_refuses_to_start_without(missing, tmp_path, openbis_standin):
    from hub import RunningHub

    hub = RunningHub(tmp_path, openbis_standin.url, openbis_standin.ca_file, extra_env={missing: ""})
    with pytest.raises(RuntimeError, match="exited"):
        hub.start(timeout=60)
    lines = [line for line in hub.log_text().splitlines() if missing in line]
    assert lines and lines[0].startswith("openbis-hub:"), hub.log_text()[-2000:]


def test_local_spawner_refuses_a_network_bind(tmp_path, openbis_standin):
    """Local servers share one OS account: never on a public address unless explicitly allowed."""
    from hub import RunningHub, free_port

    hub = RunningHub(
        tmp_path,
        openbis_standin.url,
        openbis_standin.ca_file,
        extra_env={"OPENBIS_HUB_BIND_URL": f"http://0.0.0.0:{free_port()}"},
    )
    with pytest.raises(RuntimeError, match="exited"):
        hub.start(timeout=60)
    text = hub.log_text()
    assert "no isolation between users" in text
    assert "OPENBIS_HUB_ALLOW_LOCAL_SPAWNER_ON_NETWORK=true" in text


def test_notebook_gets_a_personal_access_token_when_configured(slow_hub, openbis_standin, token_for):
    """slow_hub runs with OPENBIS_HUB_CREATE_PAT=true."""
    pats = []
    for _ in range(2):  # the second login reuses the still valid token
        session = token_for("alice")
        with browser(slow_hub) as b:
            page = b.get("/hub/login", params={"token": session, "next": "/hub/home"})
        assert page.status_code == 200
        with slow_hub.api() as api:
            auth_state = api.get("/users/alice").json()["auth_state"]
        pats.append(auth_state["notebook_token"])
        # what the server reads: the PAT, while the session token is the fresh one
        assert auth_state["openbis_token"] == session
    assert pats[0].startswith("$pat-alice-") and pats[0] == pats[1]
    info = openbis_standin.rpc("getSessionInformation", pats[0])["result"]
    assert info["userName"] == "alice" and info["personalAccessTokenSession"] is True
