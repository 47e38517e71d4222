"""Unmodified pybis 1.37.5 against the openBIS stand-in, over real https (own CA)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from standin import start_standin

pybis = pytest.importorskip("pybis")
Openbis = pybis.Openbis

DS1 = "20261123093000000-4"
DS2 = "20261123093000000-5"
COLLECTION = "/DEMO/ANALYSIS/MEASUREMENTS"
OBJECT = "/DEMO/ANALYSIS/STEP1"
OBJECT_PERMID = "20261123093000000-3"
SESSION_RE = re.compile(r"^(?P<user>.+)-\d{15}x[0-9A-F]{32}$")


@pytest.fixture(scope="module")
def openbis_standin(own_standin):
    """This module counts the stand-in's calls: it gets one of its own."""
    return own_standin


@pytest.fixture
def home(tmp_path, monkeypatch):
    """pybis writes ~/.pybis/<host>.token: give each test its own HOME."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def login(standin, user="alice", pw="alice-pw", **kw):
    o = Openbis(standin.url, verify_certificates=standin.ca_file)
    o.login(user, pw, **kw)
    return o


def test_login_token_file_and_session_info(openbis_standin, home):
    o = login(openbis_standin, save_token=True)
    m = SESSION_RE.match(o.token)
    assert m and m.group("user") == "alice"
    token_file = home / ".pybis" / "127.0.0.1.token"
    assert token_file.read_text() == o.token
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert o.is_session_active() is True
    info = o.get_session_info()
    assert info.userName == "alice"
    assert info.sessionToken == o.token
    assert info.personalAccessTokenSession is False
    assert o.get_server_information().api_version == "3.7"

    # a new instance picks the token up from the file; another one from token=
    assert Openbis(openbis_standin.url, verify_certificates=openbis_standin.ca_file).token == o.token
    o3 = Openbis(openbis_standin.url, token=o.token, verify_certificates=openbis_standin.ca_file)
    assert o3.get_session_info().userName == "alice"
    o4 = Openbis(openbis_standin.url, verify_certificates=openbis_standin.ca_file)
    o4.set_token(o.token, save_token=False)
    assert o4.is_session_active()


def test_user_with_capitals_and_dot(openbis_standin, home):
    o = login(openbis_standin, "Jane.Doe", "jane-pw")
    assert o.token.startswith("Jane.Doe-")
    assert o.get_session_info().userName == "Jane.Doe"


def test_wrong_password_and_forged_token(openbis_standin, home):
    o = Openbis(openbis_standin.url, verify_certificates=openbis_standin.ca_file)
    with pytest.raises(ValueError, match="login to openBIS failed"):
        o.login("alice", "wrong")
    with pytest.raises(ValueError, match="login to openBIS failed"):
        o.login("mallory", "x")
    forged = "alice-240101000000000x" + "0" * 32
    with pytest.raises(ValueError, match="This token is no longer valid"):
        Openbis(openbis_standin.url, token=forged, verify_certificates=openbis_standin.ca_file)
    env = openbis_standin.rpc("getSessionInformation", forged)
    assert env["error"]["code"] == 0
    assert env["error"]["message"] == f"Session token '{forged}' is invalid: user is not logged in."
    assert env["error"]["data"]["exceptionTypeName"] == "ch.systemsx.cisd.common.exceptions.InvalidSessionException"
    assert openbis_standin.rpc("isSessionActive", forged)["result"] is False
    assert openbis_standin.rpc("login", "alice", "nope")["result"] is None


def test_entities(openbis_standin, home):
    o = login(openbis_standin)
    assert list(o.get_spaces().df["code"]) == ["DEMO"]
    assert "/DEMO/ANALYSIS" in list(o.get_projects().df["identifier"])
    assert COLLECTION in list(o.get_collections(project="/DEMO/ANALYSIS").df["identifier"])
    assert OBJECT in list(o.get_objects(collection=COLLECTION).df["identifier"])
    assert {DS1, DS2} <= set(o.get_datasets(collection=COLLECTION).df["permId"])
    # other tests may have saved notebooks to the object since: the demo's dataset is there
    assert DS2 in list(o.get_datasets(sample=OBJECT).df["permId"])
    e = o.get_experiment(COLLECTION)
    assert e.permId == "20261123093000000-2" and e.type.code == "COLLECTION"
    assert o.get_experiment("20261123093000000-2").identifier == COLLECTION
    s = o.get_object(OBJECT_PERMID)
    assert s.identifier == OBJECT and s.experiment.identifier == COLLECTION
    assert o.get_object(OBJECT).permId == OBJECT_PERMID
    assert s.type.code == "EXPERIMENTAL_STEP"


def test_get_dataset_and_download(openbis_standin, home):
    o = login(openbis_standin)
    ds = o.get_dataset(DS1)
    assert ds.type.code == "RAW_DATA"
    assert ds.registrator == "admin"
    assert ds.props["$name"] == "Temperature measurements"
    assert ds.file_list == ["original/measurements.csv"]
    files = ds.get_files()
    assert "original/measurements.csv" in list(files["pathInDataSet"])
    dest = ds.download(destination=str(home / "dl"), wait_until_finished=True)
    got = Path(dest, "original", "measurements.csv").read_bytes()
    assert got.startswith(b"time_s,temperature_c,pressure_kpa\n") and got.count(b"\n") == 6
    ds2 = o.get_dataset(DS2)
    assert ds2.sample.identifier == OBJECT
    ds2.download(destination=str(home / "dl2"), create_default_folders=False, wait_until_finished=True)
    assert (home / "dl2" / "notes.txt").read_bytes().startswith(b"Experimental step 1")


@pytest.mark.parametrize("owner", ["experiment", "sample"])
def test_upload_analysis_notebook(openbis_standin, home, owner):
    o = login(openbis_standin)
    nb = home / "analysis.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    csv = home / "result.csv"
    csv.write_text("a,b\n1,2\n")
    where = {"experiment": COLLECTION} if owner == "experiment" else {"sample": OBJECT}
    new = o.new_dataset(
        type="ANALYSIS_NOTEBOOK",
        parents=[DS1, DS2],
        files=[str(nb), str(csv)],
        props={"$name": "My analysis", "notes": "line 1\nline 2", "$history_id": "hist-42"},
        **where,
    )
    new.save()
    perm_id = new.permId
    assert re.fullmatch(r"\d{17}-\d+", perm_id)

    o2 = Openbis(openbis_standin.url, token=o.token, verify_certificates=openbis_standin.ca_file)
    ds = o2.get_dataset(perm_id)
    assert ds.type.code == "ANALYSIS_NOTEBOOK"
    assert ds.registrator == "alice"
    assert sorted(ds.parents) == sorted([DS1, DS2])
    assert ds.props["$name"] == "My analysis"
    assert ds.props["notes"] == "line 1\nline 2"
    assert ds.props["$history_id"] == "hist-42"
    assert sorted(ds.file_list) == ["original/default/analysis.ipynb", "original/default/result.csv"]
    if owner == "experiment":
        assert ds.experiment.identifier == COLLECTION and ds.sample is None
    else:
        assert ds.sample.identifier == OBJECT and ds.experiment.identifier == COLLECTION
    dest = ds.download(destination=str(home / "back"), wait_until_finished=True)
    assert Path(dest, "original/default/result.csv").read_text() == "a,b\n1,2\n"

    listed = {d["permId"]: d for d in openbis_standin.datasets()}[perm_id]
    assert listed["type"] == "ANALYSIS_NOTEBOOK"
    assert listed["owner"] == (COLLECTION if owner == "experiment" else OBJECT)
    assert sorted(listed["parents"]) == sorted([DS1, DS2])
    assert listed["properties"]["$HISTORY_ID"] == "hist-42"
    assert perm_id in o2.get_dataset(DS1).children
    # uploaded files are persisted under the state dir
    assert (openbis_standin.state_dir / "store" / perm_id / "original/default/result.csv").exists()


def test_single_file_upload_lands_in_original(openbis_standin, home):
    o = login(openbis_standin, "bob", "bob-pw")
    f = home / "only.txt"
    f.write_text("x")
    ds = o.new_dataset(type="ANALYSIS_NOTEBOOK", experiment=COLLECTION, files=[str(f)])
    ds.save()
    assert o.get_dataset(ds.permId).file_list == ["original/only.txt"]


def test_personal_access_tokens(openbis_standin, home):
    o = login(openbis_standin, save_token=True)
    pat = o.get_or_create_personal_access_token("jhub")
    assert re.fullmatch(r"\$pat-alice-\d{15}x[0-9A-F]{32}", pat.permId)
    assert o.get_or_create_personal_access_token("jhub").permId == pat.permId  # reused
    assert pat.permId in list(o.get_personal_access_tokens().df["permId"])

    op = Openbis(openbis_standin.url, token=pat.permId, verify_certificates=openbis_standin.ca_file)
    info = op.get_session_info()
    assert (info.userName, info.sessionToken, info.personalAccessTokenSession, info.personalAccessTokenSessionName) == (
        "alice",
        None,
        True,
        "jhub",
    )
    assert op.get_dataset(DS1).type.code == "RAW_DATA"
    # a PAT cannot create PATs
    env = openbis_standin.rpc(
        "createPersonalAccessTokens",
        pat.permId,
        {"@type": "as.dto.pat.create.PersonalAccessTokenCreation", "sessionName": "x"},
    )
    assert env["error"]["message"] == "Personal access tokens cannot be used to manage personal access tokens."
    # upload with the PAT
    f = home / "pat.txt"
    f.write_text("via pat")
    ds = op.new_dataset(type="ANALYSIS_NOTEBOOK", sample=OBJECT, files=[str(f)])
    ds.save()
    assert op.get_dataset(ds.permId).file_list == ["original/pat.txt"]
    # logout with a PAT is a no-op; other users don't see alice's PATs
    op.logout()
    assert Openbis(
        openbis_standin.url, token=pat.permId, verify_certificates=openbis_standin.ca_file
    ).is_session_active()
    bob = login(openbis_standin, "bob", "bob-pw")
    assert pat.permId not in list(bob.get_personal_access_tokens().df.get("permId", []))


def test_expired_pat(openbis_standin, home):
    tok = openbis_standin.rpc("login", "alice", "alice-pw")["result"]
    now = int(time.time() * 1000)
    res = openbis_standin.rpc(
        "createPersonalAccessTokens",
        tok,
        [
            {
                "@type": "as.dto.pat.create.PersonalAccessTokenCreation",
                "sessionName": "old",
                "validFromDate": now - 10_000,
                "validToDate": now - 5_000,
            }
        ],
    )["result"]
    pat = res[0]["permId"]
    assert openbis_standin.rpc("isSessionActive", pat)["result"] is False
    assert (
        openbis_standin.rpc("getSessionInformation", pat)["error"]["message"]
        == "Personal access token is no longer valid."
    )


def test_logout_invalidates_token(openbis_standin, home):
    o = login(openbis_standin, save_token=True)
    token = o.token
    o.logout()
    assert o.is_session_active() is False
    o2 = Openbis(openbis_standin.url, verify_certificates=openbis_standin.ca_file)
    assert o2.token is None  # stale token file silently dropped
    assert openbis_standin.rpc("isSessionActive", token)["result"] is False
    o3 = Openbis(openbis_standin.url, verify_certificates=openbis_standin.ca_file)
    o3.__dict__["token"] = token
    with pytest.raises(ValueError, match=re.escape(f"Session token '{token}' is invalid: user is not logged in.")):
        o3.get_dataset(DS1)
    assert openbis_standin.rpc("logout", token)["result"] is None  # silent


def test_expire_endpoint_stats_and_delay(openbis_standin, home):
    o = login(openbis_standin, "bob", "bob-pw")
    openbis_standin.reset_stats()
    assert o.is_session_active()
    stats = openbis_standin.stats()
    assert stats["methods"] == {"isSessionActive": 1} and stats["total"] == 1
    openbis_standin.expire("bob")
    assert o.is_session_active() is False
    with pytest.raises(ValueError, match="Session no longer available. Please login again."):
        o.get_dataset(DS1)
    openbis_standin.set_delay(0.5)
    try:
        t0 = time.monotonic()
        login(openbis_standin, "bob", "bob-pw")
        assert time.monotonic() - t0 >= 1.0  # login + isSessionActive
    finally:
        openbis_standin.set_delay(0)


def test_tokens_not_in_access_log(openbis_standin, home):
    o = login(openbis_standin)
    f = home / "t.txt"
    f.write_text("t")
    o.new_dataset(type="ANALYSIS_NOTEBOOK", experiment=COLLECTION, files=[str(f)]).save()
    log = (openbis_standin.state_dir / "standin.log").read_text()
    assert o.token not in log


def test_session_timeout(tmp_path, home):
    s = start_standin(tmp_path / "short", session_timeout=2)
    try:
        o = login(s)
        assert o.is_session_active()
        o.get_dataset(DS1)  # touching keeps it alive
        time.sleep(3)
        assert o.is_session_active() is False
        with pytest.raises(ValueError, match="Session no longer available. Please login again."):
            o.get_dataset(DS1)
    finally:
        s.stop()


@pytest.mark.parametrize("api_version", ["3.6", "3.5"])
def test_older_download_protocols_over_http(tmp_path, home, api_version):
    """3.6: fast download v1; 3.5: classic GET /datastore_server/<permId>/<path>."""
    s = start_standin(tmp_path / "old", http=True, extra_args=["--api-version", api_version])
    try:
        assert s.url.startswith("http://") and s.ca_file is None
        o = Openbis(s.url, allow_http_but_do_not_use_this_in_production_and_only_within_safe_networks=True)
        o.login("alice", "alice-pw")
        ds = o.get_dataset(DS2)
        dest = ds.download(destination=str(home / "old"), wait_until_finished=True)
        assert Path(dest, "original/notes.txt").read_bytes().startswith(b"Experimental step 1")
        http = s.stats()["http"]
        assert http.get("download" if api_version == "3.5" else "file-transfer", 0) >= 1
    finally:
        s.stop()
