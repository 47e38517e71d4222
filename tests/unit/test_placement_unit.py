"""Notebooks handed over while a server starts: the hub's queue and the server's placement."""

from __future__ import annotations

import json

import pytest
from tornado import web
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from openbis_hub.pending import PendingNotebook, PendingNotebooks
from openbis_hub_singleuser.placement import PlacementError, RedirectedNotebook, place


def nb(source="x", file_name="n.ipynb"):
    return {
        "cells": [
            {"cell_type": "code", "metadata": {"code_cell_id": "fileName"}, "source": [f"fileName='{file_name}'"]},
            {"cell_type": "code", "metadata": {}, "source": [source]},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 4,
    }


def pending(name="n.ipynb", size=10):
    return PendingNotebook("f", name, nb(), size)


def test_queue_keeps_arrival_order_per_user_and_take_empties_only_that_user():
    queue = PendingNotebooks()
    queue.add("alice", pending("a.ipynb"))
    queue.add("bob", pending("b.ipynb"))
    queue.add("alice", pending("c.ipynb"))
    assert [n.file_name for n in queue.take("alice")] == ["a.ipynb", "c.ipynb"]
    assert queue.take("alice") == []
    assert [n.file_name for n in queue.take("bob")] == ["b.ipynb"]


def test_queue_is_bounded_per_user_and_in_bytes():
    queue = PendingNotebooks(max_per_user=2, max_bytes=100)
    queue.add("alice", pending(size=10))
    queue.add("alice", pending(size=10))
    with pytest.raises(web.HTTPError) as caught:
        queue.add("alice", pending(size=10))
    assert caught.value.status_code == 503
    with pytest.raises(web.HTTPError):
        queue.add("bob", pending(size=81))
    queue.take("alice")
    queue.add("bob", pending(size=100))  # the bytes of what was taken are free again


def test_queue_drops_what_no_server_took_in_time(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("openbis_hub.pending.time.monotonic", lambda: now[0])
    queue = PendingNotebooks(max_bytes=100, max_age=60)
    queue.add("alice", pending(size=100))
    now[0] += 61
    queue.add("bob", pending(size=100))  # alice's expired: its bytes are released
    assert queue.take("alice") == []


def test_place_never_replaces_and_renames_the_file_name_cell(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "n.ipynb").write_text("old")
    assert place(str(tmp_path), "f", "n.ipynb", nb("new")) == "f/n 2.ipynb"
    assert place(str(tmp_path), "f", "n.ipynb", nb("newer")) == "f/n 3.ipynb"
    assert (tmp_path / "f" / "n.ipynb").read_text() == "old"
    placed = json.loads((tmp_path / "f" / "n 2.ipynb").read_text())
    assert placed["cells"][0]["source"] == ["fileName='n 2.ipynb'"]
    assert placed["cells"][1]["source"] == ["new"]
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["n 2.ipynb", "n 3.ipynb", "n.ipynb"]


def test_place_creates_the_folder(tmp_path):
    assert place(str(tmp_path), "a/b", "n.ipynb", nb()) == "a/b/n.ipynb"
    assert json.loads((tmp_path / "a" / "b" / "n.ipynb").read_text()) == nb()


@pytest.mark.parametrize(
    "folder, name",
    [
        ("..", "n.ipynb"),
        ("a/../..", "n.ipynb"),
        (".hidden", "n.ipynb"),
        ("a\\b", "n.ipynb"),
        ("", "n.txt"),
        ("", "a/n.ipynb"),
        ("", "n" * 240 + ".ipynb"),
    ],
)
def test_place_refuses_what_cannot_be_placed_safely(tmp_path, folder, name):
    with pytest.raises(PlacementError):
        place(str(tmp_path / "root"), folder, name, nb())
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def request(path):
    return HTTPServerRequest(
        start_line=RequestStartLine("GET", path, "HTTP/1.1"), headers=HTTPHeaders({"Host": "hub.example.org"})
    )


def test_only_renamed_notebooks_are_redirected():
    matcher = RedirectedNotebook("/user/alice/", {"clash/n.ipynb": "clash/n 2.ipynb", "ä b.ipynb": "ä b 2.ipynb"})
    assert matcher.match(request("/user/alice/notebooks/clash/n.ipynb")) == {
        "path_args": ["notebooks/", "clash/n.ipynb"],
        "path_kwargs": {},
    }
    assert matcher.match(request("/user/alice/lab/tree/%C3%A4%20b.ipynb"))["path_args"][1] == "ä b.ipynb"
    assert matcher.match(request("/user/alice/notebooks/clash/n 2.ipynb")) is None
    assert matcher.match(request("/user/alice/notebooks/other.ipynb")) is None
    assert matcher.match(request("/user/bob/notebooks/clash/n.ipynb")) is None
