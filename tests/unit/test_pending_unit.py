"""Cold clicks without a process: the hub's queue of notebooks for starting servers, and how a server places them.

``PendingNotebooks`` (hub side) keeps notebooks per user in arrival order, bounded in count, bytes and age;
``place`` (server side) writes one without replacing anything, numbering on a clash; ``RedirectedNotebook`` and
``RedirectHandler`` send the ELN's URL for the name it asked for to the name the notebook got.
"""

from __future__ import annotations

import copy
import json
import os
import time
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from tornado import web
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from openbis_hub import pending
from openbis_hub.pending import PendingNotebook, PendingNotebooks
from openbis_hub_singleuser.placement import (
    MAX_NAME_BYTES,
    PlacementError,
    RedirectedNotebook,
    RedirectHandler,
    UnplacedNotebook,
    looked_for_now,
    place,
)

# --------------------------------------------------------------------------------------------------------------
# PendingNotebooks


class FakeClock:
    """Stands in for ``time.monotonic`` inside ``openbis_hub.pending``; moves only when told."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    # the wall clock moves with it (a notebook's age on disk counts across a hub restart); names stay unique
    wall = SimpleNamespace(monotonic=fake, time=lambda: 1.8e9 + fake.now, time_ns=time.time_ns)
    monkeypatch.setattr(pending, "time", wall)
    return fake


class RecordingLog:
    def __init__(self):
        self.warnings: list[str] = []

    def warning(self, message, *args):
        self.warnings.append(message % args)

    def info(self, message, *args):
        pass


def _nb(label: str, size: int = 10, created: float | None = None) -> PendingNotebook:
    """A pending notebook named ``<label>.ipynb`` of ``size`` bytes; ``created`` from the fake clock if given."""
    kwargs = {} if created is None else {"created": created}
    return PendingNotebook("folder", f"{label}.ipynb", {"cells": [], "label": label}, size, **kwargs)


def _labels(notebooks: list[PendingNotebook]) -> list[str]:
    return [n.content["label"] for n in notebooks]


def _assert_503(call, *args) -> None:
    with pytest.raises(web.HTTPError) as caught:
        call(*args)
    assert caught.value.status_code == 503


def test_take_returns_a_users_notebooks_in_arrival_order():
    queue = PendingNotebooks()
    for label in ["first", "second", "third"]:
        queue.add("alice", _nb(label))
    assert _labels(queue.take("alice")) == ["first", "second", "third"]


def test_take_empties_that_users_queue_only():
    queue = PendingNotebooks()
    queue.add("alice", _nb("a1"))
    queue.add("bob", _nb("b1"))
    queue.add("alice", _nb("a2"))
    assert _labels(queue.take("alice")) == ["a1", "a2"]
    assert queue.take("alice") == []
    assert len(queue) == 1
    assert _labels(queue.take("bob")) == ["b1"]
    assert len(queue) == 0


def test_take_for_a_user_with_nothing_waiting_is_empty():
    assert PendingNotebooks().take("nobody") == []


def test_model_has_the_fields_the_server_reads():
    notebook = PendingNotebook("a/b", "n.ipynb", {"cells": []}, 5)
    assert notebook.model() == {"folder": "a/b", "fileName": "n.ipynb", "content": {"cells": []}}


def test_per_user_cap_answers_503_and_does_not_store():
    queue = PendingNotebooks(max_per_user=2)
    queue.add("alice", _nb("a1"))
    queue.add("alice", _nb("a2"))
    _assert_503(queue.add, "alice", _nb("a3"))
    assert _labels(queue.take("alice")) == ["a1", "a2"]


def test_per_user_cap_does_not_limit_other_users():
    queue = PendingNotebooks(max_per_user=1)
    queue.add("alice", _nb("a1"))
    queue.add("bob", _nb("b1"))
    assert _labels(queue.take("bob")) == ["b1"]


def test_per_user_cap_is_free_again_after_take():
    queue = PendingNotebooks(max_per_user=1)
    queue.add("alice", _nb("a1"))
    queue.take("alice")
    queue.add("alice", _nb("a2"))
    assert _labels(queue.take("alice")) == ["a2"]


def test_byte_cap_allows_exactly_the_cap():
    queue = PendingNotebooks(max_bytes=100)
    queue.add("alice", _nb("a1", 60))
    queue.add("alice", _nb("a2", 40))
    assert len(queue) == 2


def test_byte_cap_answers_503_and_does_not_store():
    queue = PendingNotebooks(max_bytes=100)
    queue.add("alice", _nb("a1", 60))
    _assert_503(queue.add, "alice", _nb("too-big", 41))
    assert _labels(queue.take("alice")) == ["a1"]


def test_byte_cap_counts_all_users_together():
    queue = PendingNotebooks(max_bytes=100)
    queue.add("alice", _nb("a1", 60))
    _assert_503(queue.add, "bob", _nb("b1", 41))
    assert queue.take("bob") == []


def test_rejected_notebook_takes_no_bytes():
    """A 503 must not count the refused notebook: the full cap stays usable once the queue is taken."""
    queue = PendingNotebooks(max_bytes=100)
    queue.add("alice", _nb("a1", 100))
    _assert_503(queue.add, "alice", _nb("refused", 100))
    queue.take("alice")
    queue.add("alice", _nb("a2", 100))
    assert _labels(queue.take("alice")) == ["a2"]


def test_take_releases_its_bytes():
    queue = PendingNotebooks(max_bytes=100)
    queue.add("alice", _nb("a1", 50))
    queue.add("alice", _nb("a2", 50))
    _assert_503(queue.add, "bob", _nb("b1", 1))
    queue.take("alice")
    queue.add("bob", _nb("b1", 100))
    assert _labels(queue.take("bob")) == ["b1"]


def test_expired_notebooks_are_dropped_by_the_next_add(clock):
    queue = PendingNotebooks(max_age=60)
    queue.add("alice", _nb("old", created=clock()))
    clock.now += 60
    queue.add("bob", _nb("new", created=clock()))
    assert queue.take("alice") == []
    assert _labels(queue.take("bob")) == ["new"]


def test_notebooks_younger_than_max_age_are_kept(clock):
    queue = PendingNotebooks(max_age=60)
    queue.add("alice", _nb("old", created=clock()))
    clock.now += 59.9
    queue.add("alice", _nb("new", created=clock()))
    assert _labels(queue.take("alice")) == ["old", "new"]


def test_expiry_keeps_the_younger_notebooks_of_a_user(clock):
    queue = PendingNotebooks(max_age=60)
    queue.add("alice", _nb("old", created=clock()))
    clock.now += 30
    queue.add("alice", _nb("middle", created=clock()))
    clock.now += 31
    queue.add("alice", _nb("new", created=clock()))
    assert _labels(queue.take("alice")) == ["middle", "new"]


def test_expiry_releases_the_bytes(clock):
    """Filled to the byte cap, nothing more fits; once those expire, the whole cap is usable again."""
    queue = PendingNotebooks(max_bytes=100, max_age=60)
    queue.add("alice", _nb("a1", 70, created=clock()))
    queue.add("bob", _nb("b1", 30, created=clock()))
    _assert_503(queue.add, "carol", _nb("c1", 1, created=clock()))
    clock.now += 61
    queue.add("carol", _nb("c2", 100, created=clock()))
    assert _labels(queue.take("carol")) == ["c2"]
    assert len(queue) == 0


def test_expiry_releases_the_per_user_cap(clock):
    queue = PendingNotebooks(max_per_user=1, max_age=60)
    queue.add("alice", _nb("old", created=clock()))
    clock.now += 61
    queue.add("alice", _nb("new", created=clock()))
    assert _labels(queue.take("alice")) == ["new"]


def test_expiry_is_logged_with_the_user_and_count(clock):
    queue = PendingNotebooks(max_age=60)
    log = RecordingLog()
    queue.add("alice", _nb("a1", created=clock()), log)
    queue.add("alice", _nb("a2", created=clock()), log)
    assert log.warnings == []
    clock.now += 61
    queue.add("bob", _nb("b1", created=clock()), log)
    assert len(log.warnings) == 1
    assert "2" in log.warnings[0] and "alice" in log.warnings[0]


def test_take_does_not_hand_out_expired_notebooks(clock):
    queue = PendingNotebooks(max_age=60)
    queue.add("alice", _nb("old", created=clock()))
    clock.now += 3600
    assert queue.take("alice") == []


# --------------------------------------------------------------------------------------------------------------
# place()


def _notebook(file_name: str = "n.ipynb", quote_char: str = "'") -> dict:
    """An ELN-like notebook: a markdown cell naming the file, the ``fileName`` cell, another code cell."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3"}},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": [f"Saved as {file_name!r} in the ELN"]},
            {
                "cell_type": "code",
                "metadata": {"code_cell_id": "fileName"},
                "source": [f"fileName={quote_char}{file_name}{quote_char}"],
                "outputs": [],
                "execution_count": None,
            },
            {
                "cell_type": "code",
                "metadata": {"code_cell_id": "save"},
                "source": ["o.save(fileName)  # e.g. 'n.ipynb'"],
                "outputs": [],
                "execution_count": None,
            },
        ],
    }


def _file_name_cell(content: dict) -> str:
    cell = next(c for c in content["cells"] if c["metadata"].get("code_cell_id") == "fileName")
    return "".join(cell["source"])


def _read(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _name_of_bytes(total: int, char: str = "a") -> str:
    stem_bytes = total - len(".ipynb")
    assert stem_bytes % len(char.encode()) == 0
    return char * (stem_bytes // len(char.encode())) + ".ipynb"


def _tree(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_place_writes_the_content_as_json(tmp_path):
    content = _notebook()
    content["metadata"]["title"] = "Zürich ✓"
    expected = copy.deepcopy(content)
    assert place(str(tmp_path), "", "n.ipynb", content) == "n.ipynb"
    assert _read(tmp_path / "n.ipynb") == expected


def test_place_returns_the_path_relative_to_the_root(tmp_path):
    assert place(str(tmp_path), "a/b", "n.ipynb", _notebook()) == "a/b/n.ipynb"
    assert (tmp_path / "a" / "b" / "n.ipynb").is_file()


def test_place_drops_empty_folder_components(tmp_path):
    assert place(str(tmp_path), "a//b/", "n.ipynb", _notebook()) == "a/b/n.ipynb"


def test_place_creates_a_missing_folder(tmp_path):
    assert not (tmp_path / "new" / "deeper").exists()
    place(str(tmp_path), "new/deeper", "n.ipynb", _notebook())
    assert (tmp_path / "new" / "deeper" / "n.ipynb").is_file()


def test_place_never_replaces_an_existing_file(tmp_path):
    older = tmp_path / "clash" / "n.ipynb"
    older.parent.mkdir()
    older.write_bytes(b'{"the": "older notebook"}')
    assert place(str(tmp_path), "clash", "n.ipynb", _notebook()) == "clash/n 2.ipynb"
    assert older.read_bytes() == b'{"the": "older notebook"}'


def test_place_numbers_the_second_and_third_of_a_name(tmp_path):
    paths = [place(str(tmp_path), "clash", "n.ipynb", _notebook()) for _ in range(3)]
    assert paths == ["clash/n.ipynb", "clash/n 2.ipynb", "clash/n 3.ipynb"]
    assert _tree(tmp_path / "clash") == {"n.ipynb", "n 2.ipynb", "n 3.ipynb"}


def test_place_does_not_replace_a_dangling_symlink(tmp_path):
    (tmp_path / "n.ipynb").symlink_to(tmp_path / "missing.ipynb")
    assert place(str(tmp_path), "", "n.ipynb", _notebook()) == "n 2.ipynb"
    assert not (tmp_path / "missing.ipynb").exists()


def test_place_keeps_the_file_name_cell_when_the_name_was_free(tmp_path):
    place(str(tmp_path), "", "n.ipynb", _notebook())
    assert _read(tmp_path / "n.ipynb") == _notebook()


def test_place_rewrites_the_file_name_cell_to_the_placed_name(tmp_path):
    place(str(tmp_path), "", "n.ipynb", _notebook())
    place(str(tmp_path), "", "n.ipynb", _notebook())
    assert _file_name_cell(_read(tmp_path / "n 2.ipynb")) == "fileName='n 2.ipynb'"


def test_place_rewrites_the_file_name_cell_across_several_numbers(tmp_path):
    for _ in range(2):
        place(str(tmp_path), "", "n.ipynb", _notebook())
    place(str(tmp_path), "", "n.ipynb", _notebook())
    assert _file_name_cell(_read(tmp_path / "n 3.ipynb")) == "fileName='n 3.ipynb'"


def test_place_rewrites_a_double_quoted_file_name_cell(tmp_path):
    place(str(tmp_path), "", "n.ipynb", _notebook())
    place(str(tmp_path), "", "n.ipynb", _notebook(quote_char='"'))
    source = _file_name_cell(_read(tmp_path / "n 2.ipynb"))
    assert source.replace('"', "'") == "fileName='n 2.ipynb'"


def test_place_leaves_every_other_cell_untouched_on_a_rename(tmp_path):
    place(str(tmp_path), "", "n.ipynb", _notebook())
    place(str(tmp_path), "", "n.ipynb", _notebook())
    placed, original = _read(tmp_path / "n 2.ipynb"), _notebook()
    # the first Markdown cell gains one line saying the name was taken, recorded in the metadata
    renamed = placed["metadata"].pop("openbis_hub")["renamed"]
    assert renamed == {"requested": "n.ipynb", "name": "n 2.ipynb", "original_source": original["cells"][0]["source"]}
    assert placed["metadata"] == original["metadata"]
    first = placed["cells"][0]["source"]
    assert first[0] == original["cells"][0]["source"][0] + "\n" and first[-1].endswith("this notebook is “n 2.ipynb”.*")
    assert placed["cells"][2] == original["cells"][2]
    assert {k: v for k, v in placed["cells"][1].items() if k != "source"} == {
        k: v for k, v in original["cells"][1].items() if k != "source"
    }


def test_place_without_a_file_name_cell_writes_the_content_as_is(tmp_path):
    content = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code", "source": "x"}]}
    place(str(tmp_path), "", "n.ipynb", copy.deepcopy(content))
    place(str(tmp_path), "", "n.ipynb", copy.deepcopy(content))
    placed = _read(tmp_path / "n 2.ipynb")
    assert placed["metadata"].pop("openbis_hub") == {"renamed": {"requested": "n.ipynb", "name": "n 2.ipynb"}}
    assert placed == content


@pytest.mark.parametrize(
    "folder", ["..", "../outside", "a/../..", "a/..", ".", "./a", ".hidden", "a/.git", "a\\b", "a\x00b"]
)
def test_place_refuses_unsafe_folders_and_writes_nothing(tmp_path, folder):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(PlacementError):
        place(str(root), folder, "n.ipynb", _notebook())
    assert _tree(tmp_path) == {"root"}


def test_place_takes_an_absolute_folder_as_relative_to_the_root(tmp_path):
    """``/abs`` is not an escape: the leading slash is an empty component, dropped; nothing lands outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    path = place(str(root), str(outside), "n.ipynb", _notebook())
    assert path == str(outside).lstrip("/") + "/n.ipynb"
    assert (root / path).is_file()
    assert list(outside.iterdir()) == []


def test_place_refuses_a_folder_that_is_a_symlink_out_of_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(PlacementError):
        place(str(root), "link/sub", "n.ipynb", _notebook())
    assert list(outside.iterdir()) == []


def test_place_accepts_a_symlink_that_stays_inside_the_root(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert place(str(tmp_path), "link", "n.ipynb", _notebook()) == "link/n.ipynb"
    assert (tmp_path / "real" / "n.ipynb").is_file()


@pytest.mark.parametrize(
    "file_name", ["", "n", "n.txt", "n.ipynb.txt", "n.IPYNB", "a/n.ipynb", "a\\n.ipynb", "n\x00.ipynb", "../n.ipynb"]
)
def test_place_refuses_unsafe_file_names_and_writes_nothing(tmp_path, file_name):
    with pytest.raises(PlacementError):
        place(str(tmp_path), "f", file_name, _notebook())
    assert _tree(tmp_path) == set()


@pytest.mark.parametrize("file_name", [".n.ipynb", ".ipynb"])
def test_place_refuses_hidden_file_names(tmp_path, file_name):
    with pytest.raises(PlacementError):
        place(str(tmp_path), "", file_name, _notebook())


def test_place_refuses_a_name_longer_than_the_limit(tmp_path):
    with pytest.raises(PlacementError):
        place(str(tmp_path), "", _name_of_bytes(MAX_NAME_BYTES + 1), _notebook())
    assert list(tmp_path.iterdir()) == []


def test_place_refuses_a_taken_name_too_long_to_number(tmp_path):
    name = _name_of_bytes(MAX_NAME_BYTES, "é")
    assert place(str(tmp_path), "", name, _notebook()) == name
    before = (tmp_path / name).read_bytes()
    with pytest.raises(PlacementError):
        place(str(tmp_path), "", name, _notebook())
    assert (tmp_path / name).read_bytes() == before
    assert os.listdir(tmp_path) == [name]


def test_place_numbers_a_long_name_while_the_number_fits(tmp_path):
    name = _name_of_bytes(MAX_NAME_BYTES - 2)
    place(str(tmp_path), "", name, _notebook())
    placed = place(str(tmp_path), "", name, _notebook())
    assert placed == name[: -len(".ipynb")] + " 2.ipynb"
    assert len(placed.encode()) == MAX_NAME_BYTES


def test_place_leaves_no_temporary_files_after_success_or_a_clash(tmp_path):
    place(str(tmp_path), "f", "n.ipynb", _notebook())
    assert os.listdir(tmp_path / "f") == ["n.ipynb"]
    place(str(tmp_path), "f", "n.ipynb", _notebook())
    place(str(tmp_path), "f", "n.ipynb", _notebook())
    assert sorted(os.listdir(tmp_path / "f")) == ["n 2.ipynb", "n 3.ipynb", "n.ipynb"]


def test_place_leaves_no_temporary_files_when_it_gives_up(tmp_path):
    name = _name_of_bytes(MAX_NAME_BYTES)
    place(str(tmp_path), "", name, _notebook())
    with pytest.raises(PlacementError):
        place(str(tmp_path), "", name, _notebook())
    assert os.listdir(tmp_path) == [name]


# --------------------------------------------------------------------------------------------------------------
# RedirectedNotebook, RedirectHandler

BASE = "/user/alice/"
REDIRECTS = {"clash/n.ipynb": "clash/n 2.ipynb", "é t/n b.ipynb": "é t/n b 2.ipynb", "top.ipynb": "top 2.ipynb"}


def _get(uri: str) -> HTTPServerRequest:
    return HTTPServerRequest(
        start_line=RequestStartLine("GET", uri, "HTTP/1.1"), headers=HTTPHeaders(Host="hub.example")
    )


def _match(uri: str, base_url: str = BASE, redirects: dict | None = None):
    matcher = RedirectedNotebook(base_url, REDIRECTS if redirects is None else redirects)
    return matcher.match(_get(uri))


@pytest.mark.parametrize("route", RedirectedNotebook.ROUTES)
def test_matcher_matches_a_redirected_notebook_on_every_route(route):
    assert route in {"notebooks/", "lab/tree/", "doc/tree/"}
    assert _match(f"{BASE}{route}clash/n.ipynb") == {"path_args": [route, "clash/n.ipynb"], "path_kwargs": {}}


def test_matcher_routes_are_the_three_notebook_urls():
    assert set(RedirectedNotebook.ROUTES) == {"notebooks/", "lab/tree/", "doc/tree/"}


def test_matcher_decodes_spaces_and_unicode():
    uri = BASE + "lab/tree/" + quote("é t/n b.ipynb")
    assert "%C3%A9%20t/n%20b.ipynb" in uri
    assert _match(uri) == {"path_args": ["lab/tree/", "é t/n b.ipynb"], "path_kwargs": {}}


def test_matcher_matches_a_notebook_in_the_top_folder():
    assert _match(BASE + "notebooks/top.ipynb")["path_args"] == ["notebooks/", "top.ipynb"]


def test_matcher_ignores_the_query_string():
    assert _match(BASE + "notebooks/clash/n.ipynb?kernel_name=python3")["path_args"] == ["notebooks/", "clash/n.ipynb"]


@pytest.mark.parametrize(
    "uri",
    [
        BASE + "notebooks/clash/other.ipynb",
        BASE + "notebooks/clash/n 2.ipynb",  # the placed name itself: no redirect loop
        BASE + "notebooks/" + quote("clash/n 2.ipynb"),
        BASE + "notebooks/n.ipynb",
        BASE + "notebooks/clash/n.ipynb/more",
        BASE + "notebooks/x/clash/n.ipynb",
        BASE + "notebooks/clash/n.ipynb.bak",
    ],
)
def test_matcher_does_not_match_paths_without_a_redirect(uri):
    assert _match(uri) is None


@pytest.mark.parametrize(
    "uri",
    [
        "/user/bob/notebooks/clash/n.ipynb",
        "/user/alice2/notebooks/clash/n.ipynb",
        "/user/notebooks/clash/n.ipynb",
        BASE + "files/clash/n.ipynb",
        BASE + "api/contents/clash/n.ipynb",
        BASE + "tree/clash/n.ipynb",
        BASE + "edit/clash/n.ipynb",
        BASE + "lab/workspaces/clash/n.ipynb",
        BASE + "xnotebooks/clash/n.ipynb",
        "/notebooks/clash/n.ipynb",
        "/hub/user/alice/notebooks/clash/n.ipynb",
    ],
)
def test_matcher_does_not_match_other_prefixes(uri):
    assert _match(uri) is None


def test_matcher_sees_redirects_added_after_it_was_built():
    """The extension inserts the rule at setup and records redirects later: the dict is shared, not copied."""
    redirects: dict[str, str] = {}
    matcher = RedirectedNotebook(BASE, redirects)
    request = _get(BASE + "notebooks/late.ipynb")
    assert matcher.match(request) is None
    redirects["late.ipynb"] = "late 2.ipynb"
    assert matcher.match(request)["path_args"] == ["notebooks/", "late.ipynb"]


def test_matcher_matches_under_an_escaped_base_url():
    base = "/user/" + quote("josé") + "/"
    assert _match(base + "notebooks/clash/n.ipynb", base_url=base) is not None


class _Recorder:
    def __init__(self):
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))


def _redirect_target(
    route: str, path: str, base_url: str = BASE, redirects: dict | None = None, user: str | None = "alice"
) -> str:
    """Where RedirectHandler sends a GET of ``route + path`` by ``user`` (None: not logged in)."""
    handler = RedirectHandler.__new__(RedirectHandler)
    handler.application = SimpleNamespace(settings={"base_url": base_url, "login_url": base_url + "login"})
    handler.request = _get(base_url + route + quote(path))
    handler._current_user = user  # what jupyter_server's prepare() finds for the request
    handler.initialize(redirects=REDIRECTS if redirects is None else redirects)
    handler.redirect = recorder = _Recorder()
    handler.get(route, path)
    assert len(recorder.calls) == 1
    args, kwargs = recorder.calls[0]
    assert not kwargs.get("permanent", args[1] if len(args) > 1 else False), "a redirect lives as long as the server"
    assert kwargs.get("status", args[2] if len(args) > 2 else None) in (None, 302, 303, 307)
    return args[0] if args else kwargs["url"]


@pytest.mark.parametrize("route", RedirectedNotebook.ROUTES)
def test_handler_redirects_to_the_placed_name_on_the_same_route(route):
    assert _redirect_target(route, "clash/n.ipynb") == f"{BASE}{route}clash/n%202.ipynb"


def test_handler_tells_no_file_name_to_someone_not_logged_in():
    target = _redirect_target("notebooks/", "clash/n.ipynb", user=None)
    assert target.startswith(BASE + "login?next=") and "n%202" not in target and "n 2" not in target


def test_handler_percent_encodes_unicode_and_spaces_but_keeps_slashes():
    assert _redirect_target("notebooks/", "é t/n b.ipynb") == BASE + "notebooks/%C3%A9%20t/n%20b%202.ipynb"


def test_handler_percent_encodes_url_delimiters_in_the_name():
    target = _redirect_target("notebooks/", "n.ipynb", redirects={"n.ipynb": "a#1?b 2.ipynb"})
    assert target == BASE + "notebooks/a%231%3Fb%202.ipynb"


def test_placed_clash_round_trips_through_matcher_and_handler(tmp_path):
    """As ``place_pending`` does: the ELN's URL for the name it asked for leads to the file just placed."""
    redirects: dict[str, str] = {}
    place(str(tmp_path), "é t", "n b.ipynb", _notebook("n b.ipynb"))
    requested = "é t/n b.ipynb"
    path = place(str(tmp_path), "é t", "n b.ipynb", _notebook("n b.ipynb"))
    assert path != requested
    redirects[requested] = path
    match = _match(BASE + "lab/tree/" + quote(requested), redirects=redirects)
    target = _redirect_target(*match["path_args"], redirects=redirects)
    assert target == BASE + "lab/tree/" + quote(path)
    placed_file = tmp_path / path
    assert _file_name_cell(_read(placed_file)) == "fileName='n b 2.ipynb'"


# --------------------------------------------------------------------------------------------------------------
# UnplacedNotebook, looked_for_now: the ELN's tab before the notebook was delivered


def _unplaced(root, looked_for=None, recheck_after=30.0) -> UnplacedNotebook:
    return UnplacedNotebook(BASE, str(root), {} if looked_for is None else looked_for, recheck_after)


@pytest.mark.parametrize("route", RedirectedNotebook.ROUTES)
def test_unplaced_matches_a_missing_notebook_on_every_route(tmp_path, route):
    uri = BASE + route + quote("é t/n b.ipynb")
    assert _unplaced(tmp_path).match(_get(uri)) == {"path_args": [route, "é t/n b.ipynb"], "path_kwargs": {}}


def test_unplaced_does_not_match_a_notebook_that_is_there(tmp_path):
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "n.ipynb").write_text("{}")
    assert _unplaced(tmp_path).match(_get(BASE + "notebooks/here/n.ipynb")) is None
    assert _unplaced(tmp_path).match(_get(BASE + "notebooks/here/m.ipynb")) is not None


@pytest.mark.parametrize(
    "uri",
    [
        BASE + "notebooks/folder",  # a folder's page, not a notebook
        BASE + "notebooks/data.csv",
        BASE + "notebooks/../x.ipynb",
        BASE + "notebooks/a//x.ipynb",
        BASE + "api/contents/x.ipynb",
        "/user/bob/notebooks/x.ipynb",
    ],
)
def test_unplaced_ignores_what_is_not_a_notebook_page_under_this_server(tmp_path, uri):
    assert _unplaced(tmp_path).match(_get(uri)) is None


def test_unplaced_looks_for_a_path_once_until_recheck_after(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr("openbis_hub_singleuser.placement.time.monotonic", lambda: now[0])
    looked_for: dict[str, float] = {}
    matcher = _unplaced(tmp_path, looked_for, recheck_after=30)
    request = _get(BASE + "notebooks/never.ipynb")
    assert matcher.match(request) is not None
    looked_for_now(looked_for, "never.ipynb")
    assert matcher.match(request) is None, "the handler's redirect must reach Jupyter's own page: no loop"
    now[0] += 29
    assert matcher.match(request) is None
    now[0] += 2
    assert matcher.match(request) is not None, "a later click with the same name is looked for again"


def test_looked_for_keeps_only_the_latest_paths():
    looked_for: dict[str, float] = {}
    for i in range(5):
        looked_for_now(looked_for, f"{i}.ipynb", keep=3)
    assert list(looked_for) == ["2.ipynb", "3.ipynb", "4.ipynb"]
    looked_for_now(looked_for, "2.ipynb", keep=3)
    assert list(looked_for) == ["3.ipynb", "4.ipynb", "2.ipynb"], "a path looked for again is the latest"


# --------------------------------------------------------------------------------------------------------------
# PendingNotebooks on disk: a hub that restarts still delivers the notebooks of the clicks before


def _kept(queue: PendingNotebooks, name: str, label: str, size: int = 10) -> PendingNotebook:
    notebook = _nb(label, size)
    queue.add(name, notebook)
    queue.keep(name, notebook)
    return notebook


def test_a_restarted_hub_finds_the_notebooks_no_server_took_in_order(tmp_path):
    before = PendingNotebooks(directory=tmp_path)
    for label in ["first", "second"]:
        _kept(before, "alice", label)
    _kept(before, "bob", "b1")
    after = PendingNotebooks(directory=tmp_path)  # the hub's next life: same directory
    assert len(after) == 3
    assert _labels(after.take("alice")) == ["first", "second"]
    assert [n.model() for n in after.take("bob")] == [_nb("b1").model()]


def test_taken_notebooks_leave_no_file_and_do_not_come_back(tmp_path):
    queue = PendingNotebooks(directory=tmp_path)
    notebook = _kept(queue, "alice", "once")
    assert notebook.file is not None and notebook.file.exists()
    queue.take("alice")
    assert not notebook.file if notebook.file is None else not notebook.file.exists()
    assert list(tmp_path.rglob("*.json")) == []
    assert len(PendingNotebooks(directory=tmp_path)) == 0


def test_files_are_private_and_named_without_the_user_name(tmp_path):
    queue = PendingNotebooks(directory=tmp_path)
    notebook = _kept(queue, "alice.smith@lab", "x")
    assert "alice" not in str(notebook.file.relative_to(tmp_path))
    assert notebook.file.stat().st_mode & 0o077 == 0
    assert notebook.file.parent.stat().st_mode & 0o077 == 0


def test_the_age_counts_across_the_restart(tmp_path, clock):
    before = PendingNotebooks(directory=tmp_path, max_age=600)
    _kept(before, "alice", "old")
    clock.now += 590
    _kept(before, "alice", "young")
    clock.now += 20  # "old" is 610 s old when the next hub loads it
    after = PendingNotebooks(directory=tmp_path, max_age=600)
    assert _labels(after.take("alice")) == ["young"]
    assert list(tmp_path.rglob("*.json")) == [], "the expired one's file went with it"


def test_an_unreadable_file_is_removed_and_the_rest_loaded(tmp_path):
    before = PendingNotebooks(directory=tmp_path)
    good = _kept(before, "alice", "good")
    broken = good.file.parent / "00000000000000000001-broken.json"
    broken.write_text('{"user": "alice", "folder": ')
    partial = good.file.parent / ".tmp-unfinished"  # the previous hub died while writing it
    partial.write_text('{"user": "al')
    log = RecordingLog()
    after = PendingNotebooks(directory=tmp_path, log=log)
    assert _labels(after.take("alice")) == ["good"]
    assert not broken.exists() and any("unreadable" in w for w in log.warnings)
    assert not partial.exists()


def test_a_notebook_taken_while_it_was_written_leaves_no_file(tmp_path):
    queue = PendingNotebooks(directory=tmp_path)
    notebook = _nb("raced")
    queue.add("alice", notebook)
    queue.take("alice")  # the server took it before the hub's write finished
    queue.keep("alice", notebook)
    assert list(tmp_path.rglob("*.json")) == []


def test_without_a_directory_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    queue = PendingNotebooks()
    _kept(queue, "alice", "memory")
    assert list(tmp_path.rglob("*")) == []
