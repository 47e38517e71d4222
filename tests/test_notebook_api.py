"""The service's JSON API for integrators, and the launch flow's failure answers."""

from __future__ import annotations

import httpx
import pytest

from openbis_hub.service.app import OpenBISService

from eln_client import eln_create, notebook


def api(hub, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"{hub.url}/services/openbis/api", headers=headers, timeout=120)


def test_read_save_export_and_sessions(hub, token_for):
    token = token_for("alice")
    with api(hub, token) as client:
        saved = client.put(
            "/notebooks/shared/analysis.ipynb",
            json={"content": notebook("y = 2"), "format": "json", "type": "notebook", "export": True},
        )
        assert saved.status_code == 200, saved.text
        assert saved.json()["path"] == "shared/analysis.ipynb" and "content" not in saved.json()

        read = client.get("/notebooks/shared/analysis.ipynb")
        assert read.status_code == 200, read.text
        body = read.json()
        assert body["data"]["content"]["cells"][0]["source"] == "y = 2"
        assert body["session"]["path"] == "shared/analysis.ipynb"
        assert body["session"]["kernel"]["name"] == "python3"

        sessions = client.get("/sessions").json()["data"]
        assert any(
            s["id"] == body["session"]["id"] and s["notebook"]["path"] == "shared/analysis.ipynb" for s in sessions
        )
        assert {"id", "path", "name", "type", "kernel"} <= set(sessions[0])
        assert {"id", "name", "last_activity", "execution_state", "connections"} <= set(sessions[0]["kernel"])

    with hub.api() as admin:
        script = httpx.get(
            f"{hub.url}/user/alice/api/contents/shared/analysis.py", headers=admin.headers, timeout=30
        ).json()
    assert "y = 2" in script["content"]


def test_unhandled_type_and_bad_bodies(hub, token_for):
    with api(hub, token_for("alice")) as client:
        wrong_type = client.put("/notebooks/x.ipynb", json={"content": {}, "type": "file"})
        not_json = client.put("/notebooks/x.ipynb", content=b"{nope")
        unsafe = client.get("/notebooks/%2E%2E/%2E%2E/etc/passwd.ipynb")
        missing = client.get("/notebooks/does-not-exist.ipynb")
        bad_owner = client.post("/notebooks", json={"owner": {"space": "DEMO"}})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["message"] == "Unhandled contents type: file"
    assert not_json.status_code == 400
    assert unsafe.status_code == 400 and ".." in unsafe.json()["message"]
    assert missing.status_code == 404
    assert bad_owner.status_code == 400 and "owner" in bad_owner.json()["message"]


def test_no_or_bad_auth(hub):
    with api(hub) as client:
        for method, path in [("GET", "/notebooks/a.ipynb"), ("PUT", "/notebooks/a.ipynb"), ("GET", "/sessions")]:
            answer = client.request(method, path)
            assert answer.status_code == 401
            assert answer.json() == {"status": 401, "error": "unauthorized", "message": "No auth information found"}
    with api(hub, "alice-261123000000000x0123456789ABCDEF0123456789ABCDEF") as client:
        forged = client.get("/sessions")
    assert forged.status_code == 401 and "not valid" in forged.json()["message"]


async def test_one_user_cannot_read_another_users_notebook(hub, token_for):
    await eln_create(hub, token_for("alice"), "private", "secret.ipynb", notebook("alice's secret"))
    with api(hub, token_for("bob")) as client:
        answer = client.get("/notebooks/private/secret.ipynb")
    # bob's token opens bob's own server, where there is no such file
    assert answer.status_code == 404
    assert "alice's secret" not in answer.text


def test_openapi_document_covers_every_route(hub):
    from openapi_spec_validator import validate

    document = httpx.get(f"{hub.url}/services/openbis/api/openapi.json", timeout=30).json()
    validate(document)  # a valid OpenAPI 3.1 document
    routes = OpenBISService(openbis_url="https://openbis.invalid").make_app().wildcard_router.rules
    prefix = "/services/openbis"
    documented = {prefix + p.replace("{path}", "(.+)").rstrip("/") for p in document["paths"]}
    for rule in routes:
        pattern = rule.matcher.regex.pattern.rstrip("$")
        if pattern.endswith("(/.*)?"):
            pattern = pattern[: -len("(/.*)?")]
        assert pattern in documented, pattern
    for path in document["paths"].values():
        for operation in path.values():
            assert operation["responses"], operation


def _create(hub, token):
    return httpx.post(
        f"{hub.url}/services/openbis/api/notebooks",
        headers={"Authorization": f"Bearer {token}"},
        json={"owner": {"object": "/DEMO/STEP1"}},
        timeout=120,
    )


def test_spawn_failure_is_502_with_reason(slow_hub, token_for):
    """The integrators' API waits for the server: a spawn that fails is a 502 with the hub's reason."""
    answer = _create(slow_hub, token_for("bob"))
    assert answer.status_code == 502, answer.text
    assert "image openbis-hub/missing:1 not found" in answer.json()["message"]


def test_spawn_that_never_answers_is_504(slow_hub, token_for):
    answer = _create(slow_hub, token_for("Jane.Doe"))
    assert answer.status_code in {504}, answer.text
    assert "did not start" in answer.json()["message"]


def test_the_elns_click_answers_at_once_and_the_failure_shows_on_the_spawn_page(slow_hub, token_for):
    """The ELN's click never waits for a spawn (the popup window would close): the page says what failed."""
    token = token_for("bob")
    answer = httpx.post(
        f"{slow_hub.url}/services/openbis/?token={token}&folder=f&filename=n.ipynb&test=True",
        content=b"TEST",
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    with httpx.Client(base_url=slow_hub.url, follow_redirects=True, timeout=60) as browser:
        page = browser.get("/hub/login", params={"token": token, "next": "/user/bob/notebooks/f/n.ipynb"})
        progress = browser.get("/hub/api/users/bob/server/progress")
    assert page.status_code in (200, 500), page.status_code
    assert "image openbis-hub/missing:1 not found" in page.text + progress.text


@pytest.mark.parametrize("delay", [5])
def test_slow_openbis_is_502_not_a_hang(slow_hub, openbis_standin, token_for, delay):
    token = token_for("alice")
    openbis_standin.set_delay(delay)
    try:
        answer = httpx.post(
            f"{slow_hub.url}/services/openbis/?token={token}&folder=f&filename=n.ipynb&test=True",
            content=b"TEST",
            timeout=30,
        )
    finally:
        openbis_standin.set_delay(0)
    assert answer.status_code == 502
    assert "did not answer within 2 s" in answer.json()["message"]


def test_open_a_stored_notebook_from_its_dataset(hub, token_for):
    """``POST api/notebooks {"from_dataset"}``: the ELN's "Use Jupyter Notebook as Template", through the service."""
    token = token_for("alice")
    with api(hub, token) as client:
        created = client.post(
            "/notebooks",
            json={"owner": {"experiment": "/DEMO/ANALYSIS/MEASUREMENTS"}, "datasets": ["20261123093000000-4"],
                  "folder": "fromds", "name": "orig"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        with hub.api() as admin:
            saved = httpx.post(
                f"{hub.url}/user/alice/openbis/save",
                headers=admin.headers,
                json={"path": created.json()["path"], "environment": False},
                timeout=120,
            )
        assert saved.status_code == 200, saved.text
        perm_id = saved.json()["permId"]

        opened = client.post(
            "/notebooks", json={"from_dataset": perm_id, "folder": "fromds/again", "keep_history": True}
        )
        assert opened.status_code == 201, opened.text
        body = opened.json()
        assert body["path"] == "fromds/again/orig.ipynb" and body["permId"] == perm_id
        assert body["history_id"] == saved.json()["history_id"], "the history is kept"
        assert body["link"].endswith("/user/alice/notebooks/fromds/again/orig.ipynb")
        nb = client.get("/notebooks/fromds/again/orig.ipynb").json()["data"]["content"]
        sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"]]
        assert f'resultDatasetParents=["{perm_id}"]' in sources

        again = client.post("/notebooks", json={"from_dataset": perm_id, "folder": "fromds/again"})
        assert again.status_code == 201 and again.json()["path"] == "fromds/again/orig 2.ipynb"
        assert again.json()["history_id"] != body["history_id"], "a new history unless kept"

        assert client.post("/notebooks", json={"from_dataset": "no such id!"}).status_code == 400
        assert client.post("/notebooks", json={"from_dataset": perm_id, "keep_history": "yes"}).status_code == 400
        gone = client.post("/notebooks", json={"from_dataset": "20000101000000000-99"})
        assert gone.status_code == 404, gone.text
        assert token not in gone.text
