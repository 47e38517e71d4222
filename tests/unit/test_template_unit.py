"""The ELN template built server-side: ids are checked, and every value is a literal in its cell.

An owner id such as ``x'); import os; os.system('id'); ('`` used to become code in the
notebook. These tests check the formats accepted, that refused values say which field is
wrong, and that whatever passes the check is a plain string constant in valid Python.
"""

from __future__ import annotations

import ast
import random

import pytest

from openbis_hub.eln_template import (
    MAX_DATASETS,
    _literal,
    check_dataset_id,
    check_owner,
    eln_notebook,
    validate_request,
)
from openbis_hub.errors import BadRequest

PERM_ID = "20230101123456789-42"
DATASETS = [
    {"permId": "20261123093000000-4", "owner": {"experiment": "20261123093000000-2"}},
    {"permId": "20261123093000000-5", "owner": {"object": "/DEMO/ANALYSIS/STEP1"}},
    {"permId": "MY_DATASET.v2-1"},  # a code set through the API; no owner given
]
OWNERS = [
    {"experiment": "/DEMO/ANALYSIS/MEASUREMENTS"},
    {"experiment": PERM_ID},
    {"object": "/DEMO/ANALYSIS/STEP1"},
    {"object": "/DEMO/STEP1"},
    {"object": PERM_ID},
]
GETTERS = {"get_object", "get_experiment", "get_dataset"}

CRAFTED = [
    "x'); import os; os.system('id'); ('",
    'x"); import os; os.system("id"); ("',
    "/S/P/E')\nimport os\nos.system('id')\n#",
    "/S/P/E\n",  # '$' would let a trailing newline through; fullmatch does not
    "/S/P/E\\",
    "/S/P/E' + __import__('os').system('id') + '",
    "20230101123456789-42'",
    "20230101123456789-42\r",
    "/S/P/E#",
    "/S/P/E ",
    " /S/P/E",
    "/S/P/E;",
    "/S/P/{E}",
    "/S/P/É",
    "/S/P/E\x00",
    "２０２３０１０１１２３４５６７８９-42",  # full-width digits: \d would take them
    "",
]


def _code_cells(notebook: dict) -> list[str]:
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def _parse_all(notebook: dict) -> list[ast.Module]:
    """Every code cell compiled (so it is valid Python) and parsed."""
    trees = []
    for i, source in enumerate(_code_cells(notebook)):
        compile(source, f"<cell {i}>", "exec")
        trees.append(ast.parse(source))
    return trees


def _getter_args(trees: list[ast.Module]) -> list[tuple[str, object]]:
    """``(method, argument)`` of every ``o.get_object/get_experiment/get_dataset(...)`` call, in order."""
    found = []
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in GETTERS:
                assert len(node.args) == 1 and not node.keywords
                assert isinstance(node.args[0], ast.Constant), ast.dump(node)
                found.append((node.func.attr, node.args[0].value))
    return sorted(found, key=lambda x: (x[0], str(x[1])))


def _assigned(trees: list[ast.Module], name: str):
    for tree in trees:
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and [getattr(t, "id", None) for t in stmt.targets] == [name]:
                return ast.literal_eval(stmt.value)
    raise AssertionError(f"{name} is not assigned")


def _expected_getters(datasets: list[dict], owner: dict) -> list[tuple[str, object]]:
    kind, owner_id = next(iter(owner.items()))
    method = {"object": "get_object", "experiment": "get_experiment"}
    expected = [(method[kind], owner_id)] * 2  # the "owner=" cell and the new_dataset(...) cell
    for ds in datasets:
        expected.append(("get_dataset", ds["permId"]))
        for k, v in (ds.get("owner") or {}).items():
            expected.append((method[k], v))
    return sorted(expected, key=lambda x: (x[0], str(x[1])))


def _check_notebook(file_name, datasets, owner, history_id):
    """The notebook compiles and every value from the input is exactly one string constant where it belongs."""
    notebook = eln_notebook(file_name, datasets, owner, history_id=history_id)
    trees = _parse_all(notebook)
    assert _assigned(trees, "fileName") == file_name
    assert _assigned(trees, "resultDatasetParents") == [ds["permId"] for ds in datasets]
    assert _assigned(trees, "resultDatasetHistoryId") == history_id
    assert _getter_args(trees) == _expected_getters(datasets, owner)
    # no cell grew statements: a value that broke out would add some
    per_dataset = [n for ds in datasets for n in ([2, 2, 1] if ds.get("owner") else [2, 1])]
    shapes = [len(t.body) for t in trees]
    assert shapes == [1, 1, 1, 1, 1, 2, 2] + per_dataset + [1] * len(datasets) + [0, 7, 2, 2]
    return notebook


@pytest.mark.parametrize("owner", OWNERS, ids=lambda o: f"{next(iter(o))}={next(iter(o.values()))}")
def test_template_compiles_and_carries_the_inputs_as_constants(owner):
    _check_notebook("analysis.ipynb", DATASETS, owner, "hid-1")


def test_file_name_and_history_id_are_literals_whatever_they_hold():
    """They are not checked against a format (the file name is checked in paths.py), so repr carries them."""
    for name in ["it's.ipynb", 'say "hi".ipynb', "both ' and \".ipynb", "back\\slash.ipynb", "new\nline.ipynb"]:
        _check_notebook(name, DATASETS[:1], OWNERS[0], "h'i\"d\\\n")


def test_cells_keep_the_elns_text():
    """Only the quoting mechanism changed: for valid ids the cells read as the ELN writes them."""
    notebook = eln_notebook("it's.ipynb", DATASETS[:2], {"object": "/DEMO/ANALYSIS/STEP1"}, history_id="hid-1")
    cells = _code_cells(notebook)
    assert cells[0] == 'fileName="it\'s.ipynb"'
    assert cells[1] == 'resultDatasetParents=["20261123093000000-4", "20261123093000000-5"]'
    assert cells[2] == "resultDatasetHistoryId='hid-1'"
    assert "s0 = o.get_experiment('20261123093000000-2')\ns0.attrs" in cells
    assert "s1 = o.get_object('/DEMO/ANALYSIS/STEP1')\ns1" in cells
    assert "ds0 = o.get_dataset('20261123093000000-4')\nds0.attrs" in cells
    assert "owner= o.get_object('/DEMO/ANALYSIS/STEP1'),\nowner" in cells
    assert "sample= o.get_object('/DEMO/ANALYSIS/STEP1'),\n" in notebook["cells"][-1]["source"]
    ids = [c["metadata"].get("code_cell_id") for c in notebook["cells"] if c["cell_type"] == "code"]
    assert ids[:5] == [
        "fileName",
        "resultDatasetParents",
        "resultDatasetHistoryId",
        "resultDatasetName",
        "resultDatasetNotes",
    ]
    assert set(ids[5:]) == {None}
    markdown = [c["source"][0] for c in notebook["cells"] if c["cell_type"] == "markdown"]
    assert "Dataset 20261123093000000-4 Owner:" in markdown and "Dataset 20261123093000000-5:" in markdown


@pytest.mark.parametrize(
    "value",
    [
        "/SPACE/PROJECT/EXPERIMENT",
        "/demo/analysis/measurements",  # pybis upper-cases identifiers itself
        "/S-1/P.2/E_3",
        PERM_ID,
        "20230101123456789-1",
    ],
)
def test_experiment_formats_accepted(value):
    assert check_owner({"experiment": value}) == {"experiment": value}


@pytest.mark.parametrize(
    "value",
    [
        "/SPACE/SAMPLE",
        "/SPACE/PROJECT/SAMPLE",
        "/SHARED_SAMPLE",
        "/SPACE/PROJECT/EXPERIMENT/SAMPLE",  # ELN-LIMS form, pybis drops the experiment
        "/SPACE/CONTAINER:SAMPLE",
        "/SPACE/PROJECT/CONTAINER:SAMPLE",
        PERM_ID,
    ],
)
def test_object_formats_accepted(value):
    assert check_owner({"object": value}) == {"object": value}


@pytest.mark.parametrize("value", [PERM_ID, "20261123093000000-4", "MY_DATASET.v2-1", "RAW-1"])
def test_dataset_formats_accepted(value):
    assert check_dataset_id(value) == value


@pytest.mark.parametrize(
    "kind, value",
    [
        ("experiment", "/SPACE/PROJECT"),  # a project, not an experiment
        ("experiment", "/S/P/E/X"),
        ("experiment", "SPACE/PROJECT/EXPERIMENT"),
        ("experiment", "/S//E"),
        ("experiment", "2023010112345678-42"),  # 16 digits
        ("experiment", "/S/P/A:B"),  # containers are for objects only
        ("object", "/S:C/X"),  # a container only in the last part
        ("object", "/S/P/E/C/X"),
        ("object", "/S/C::X"),
        ("object", "/"),
        ("object", "SAMPLE"),
    ],
)
def test_wrong_shapes_refused(kind, value):
    with pytest.raises(BadRequest, match=f"'owner.{kind}' is not an openBIS {kind}"):
        check_owner({kind: value})


@pytest.mark.parametrize("value", CRAFTED, ids=repr)
@pytest.mark.parametrize("kind", ["experiment", "object"])
def test_crafted_owner_refused(kind, value):
    with pytest.raises(BadRequest) as caught:
        eln_notebook("n.ipynb", [], {kind: value})
    assert caught.value.status == 400
    assert f"'owner.{kind}'" in caught.value.message


@pytest.mark.parametrize("value", CRAFTED, ids=repr)
def test_crafted_dataset_refused(value):
    with pytest.raises(BadRequest, match=r"'datasets\[1\].permId' is not an openBIS dataset permId"):
        eln_notebook("n.ipynb", [{"permId": PERM_ID}, {"permId": value}], OWNERS[0])
    with pytest.raises(BadRequest, match=r"'datasets\[0\]' is not an openBIS dataset permId"):
        validate_request(OWNERS[0], [value])


@pytest.mark.parametrize("value", CRAFTED, ids=repr)
def test_crafted_dataset_owner_refused(value):
    with pytest.raises(BadRequest, match=r"'datasets\[0\].owner.object' is not"):
        eln_notebook("n.ipynb", [{"permId": PERM_ID, "owner": {"object": value}}], OWNERS[0])


@pytest.mark.parametrize(
    "owner",
    [None, "/S/P/E", [], {}, {"space": "DEMO"}, {"experiment": "/S/P/E", "object": "/S/X"}, {"Experiment": "/S/P/E"}],
    ids=repr,
)
def test_owner_must_be_one_experiment_or_object(owner):
    with pytest.raises(BadRequest, match=r"'owner' must be \{'experiment': <id>\} or \{'object': <id>\}"):
        validate_request(owner, [])


@pytest.mark.parametrize("value", [42, None, ["/S/P/E"], {"id": "/S/P/E"}, b"/S/P/E"], ids=repr)
def test_ids_must_be_strings(value):
    with pytest.raises(BadRequest, match="'owner.object' must be a string"):
        check_owner({"object": value})
    with pytest.raises(BadRequest, match=r"'datasets\[0\]' must be a string"):
        validate_request(OWNERS[0], [value] if not isinstance(value, dict) else [42])


def test_datasets_must_be_a_list():
    with pytest.raises(BadRequest, match="'datasets' must be a list"):
        validate_request(OWNERS[0], PERM_ID)
    assert validate_request(OWNERS[0], None) == (OWNERS[0], [])


def test_message_shows_at_most_80_characters_of_the_value():
    bad = "x'" + "A" * 10_000
    with pytest.raises(BadRequest) as caught:
        check_owner({"experiment": bad})
    message = caught.value.message
    assert message.startswith("'owner.experiment' is not an openBIS experiment permId or identifier")
    assert "A" * 78 not in message and "A" * 70 in message and "…" in message
    assert len(message) < 250
    too_long = "/S/P/" + "E" * 1000  # the right characters but far too long
    with pytest.raises(BadRequest, match="'owner.experiment' is not"):
        check_owner({"experiment": too_long})


def test_at_most_max_datasets():
    assert MAX_DATASETS == 100
    many = [f"20230101123456789-{i}" for i in range(MAX_DATASETS)]
    owner, checked = validate_request(OWNERS[0], many)
    assert [d["permId"] for d in checked] == many
    _check_notebook("n.ipynb", checked, owner, "h")
    with pytest.raises(BadRequest, match="at most 100 datasets"):
        validate_request(OWNERS[0], many + ["20230101123456789-100"])
    with pytest.raises(BadRequest, match="at most 100 datasets"):
        eln_notebook("n.ipynb", [{"permId": p} for p in many + ["20230101123456789-100"]], OWNERS[0])


def test_validate_request_normalises_both_forms():
    owner, checked = validate_request(
        {"object": "/S/X"}, [PERM_ID, {"permId": "RAW-1", "owner": {"experiment": "/S/P/E"}}, {"permId": "B"}]
    )
    assert owner == {"object": "/S/X"}
    assert checked == [{"permId": PERM_ID}, {"permId": "RAW-1", "owner": {"experiment": "/S/P/E"}}, {"permId": "B"}]


# What would break out of a quoted string, mixed with what the formats allow.
_NASTY = "'\"\\\n\r\t\x00\x0b\x0c#;()[]{}+ :/$%`\u2028\u0085é２\ud800"
_ALLOWED = "ABCXYZabcxyz0123456789_.-"


def _random_strings(rng: random.Random, count: int):
    for _ in range(count):
        alphabet = rng.choice([_ALLOWED, _ALLOWED + "/", _ALLOWED + "/:", _ALLOWED + _NASTY, _NASTY])
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))


def _shaped(rng: random.Random, parts: int, container: bool = False) -> str:
    codes = ["".join(rng.choice(_ALLOWED) for _ in range(rng.randint(1, 8))) for _ in range(parts)]
    if container:
        codes[-1] = codes[-1] + ":" + rng.choice(_ALLOWED)
    return "/" + "/".join(codes)


def test_literal_round_trips_any_string():
    """``_literal`` is a single string constant for any str, in both quote styles."""
    rng = random.Random(20230101)
    samples = list(_random_strings(rng, 3000)) + ["", "'", '"', "'\"", "\\", "\\'", "\n", "\ud800"]
    for value in samples:
        for quote in ("'", '"'):
            text = _literal(value, quote)
            tree = ast.parse(text, mode="eval")
            assert isinstance(tree.body, ast.Constant) and tree.body.value == value, (value, text)
            if "'" not in value and '"' not in value and value.isprintable() and "\\" not in value:
                assert text == quote + value + quote  # plain values read as the ELN writes them


def test_whatever_passes_the_check_cannot_break_out():
    """Random and shaped ids: each one either is refused or ends up as exactly one string constant."""
    rng = random.Random(4711)
    candidates = list(_random_strings(rng, 4000))
    candidates += [_shaped(rng, n, container=rng.random() < 0.3) for n in (1, 2, 3, 4) for _ in range(50)]
    candidates += [f"{rng.randrange(10**16, 10**17)}-{rng.randrange(10**6)}" for _ in range(50)]
    passed = {"experiment": 0, "object": 0, "dataset": 0}
    for value in candidates:
        for kind in ("experiment", "object"):
            try:
                owner = check_owner({kind: value})
            except BadRequest:
                continue
            passed[kind] += 1
            _check_notebook("n.ipynb", [{"permId": PERM_ID, "owner": owner}], owner, "h")
        try:
            check_dataset_id(value)
        except BadRequest:
            continue
        passed["dataset"] += 1
        _check_notebook("n.ipynb", [{"permId": value}], OWNERS[0], "h")
    # the generator does reach the accepted formats, so the loop above tested something
    assert min(passed.values()) > 40, passed


def test_run_all_passes_the_session_refresh_cell_and_the_rewrite_is_recorded():
    from openbis_hub.eln_template import make_run_all_safe

    nb = eln_notebook("n.ipynb", [{"permId": "20261123093000000-4"}], {"object": "/DEMO/STEP1"})
    before = [dict(c, source=list(c["source"])) for c in nb["cells"]]
    rewritten = make_run_all_safe(nb)
    assert len(rewritten) == 1
    index = rewritten[0]
    cell = "".join(nb["cells"][index]["source"])
    namespace = {"o": None}
    exec(compile(cell, "refresh", "exec"), namespace)  # runs through: no set_token on None
    namespace = {"o": type("O", (), {"set_token": lambda self, token: namespace.__setitem__("set", token)})()}
    put_in = cell.replace('sessionToken = "write your session token here"', 'sessionToken = "tok"')
    exec(compile(put_in, "refresh", "exec"), namespace)
    assert namespace["set"] == "tok", "a token put in is still used"
    assert [c for i, c in enumerate(nb["cells"]) if i != index] == [c for i, c in enumerate(before) if i != index]
    record = nb["metadata"]["openbis_hub"]["rewritten_cells"]
    assert record == [{"index": index, "reason": record[0]["reason"], "original_source": before[index]["source"]}]
    assert make_run_all_safe(nb) == [], "a second pass changes nothing"


# --- the name typed was taken: the notebook's first cell says it -------------------------------


def test_a_taken_name_is_said_under_the_title_and_recorded():
    from openbis_hub.eln_template import note_taken_name

    nb = eln_notebook("analysis 2.ipynb", [], {"object": "/DEMO/STEP1"})
    title = list(nb["cells"][0]["source"])
    others = [dict(c) for c in nb["cells"][1:]]
    assert note_taken_name(nb, "demo", "analysis.ipynb", "analysis 2.ipynb")
    text = "".join(nb["cells"][0]["source"])
    assert text.startswith("".join(title)), "the title stays first"
    assert "“analysis.ipynb” was taken in “demo”, so this notebook is “analysis 2.ipynb”" in text
    assert nb["cells"][1:] == others, "no other cell changes"
    renamed = nb["metadata"]["openbis_hub"]["renamed"]
    assert renamed == {"requested": "analysis.ipynb", "name": "analysis 2.ipynb", "original_source": title}

    # placed beside a file that appeared meanwhile: one line, naming what was typed
    assert note_taken_name(nb, "demo", "analysis 2.ipynb", "analysis 3.ipynb")
    text = "".join(nb["cells"][0]["source"])
    assert (
        text.count("was taken") == 1
        and "“analysis.ipynb” was taken in “demo”, so this notebook is “analysis 3.ipynb”" in text
    )
    assert "".join(renamed["original_source"]) == "".join(title)


def test_a_free_name_or_a_notebook_without_a_title_keeps_its_cells():
    from openbis_hub.eln_template import note_taken_name

    nb = eln_notebook("a.ipynb", [], {"object": "/DEMO/STEP1"})
    before = [dict(c) for c in nb["cells"]]
    assert not note_taken_name(nb, "", "a.ipynb", "a.ipynb")
    assert nb["cells"] == before and "openbis_hub" not in nb["metadata"]

    code_first = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "source": "1"}], "metadata": {}}
    assert not note_taken_name(code_first, "", "a.ipynb", "a 2.ipynb")
    assert code_first["cells"][0]["source"] == "1"
    assert code_first["metadata"]["openbis_hub"]["renamed"] == {"requested": "a.ipynb", "name": "a 2.ipynb"}


# --- both ELN generations' save cells read the same ---------------------------------------------


def test_the_older_and_the_newer_elns_save_cells_give_the_same_save_defaults():
    """openBIS 20.10's ELN writes props '$name'/'$history_id', openBIS 6/7's 'name'/'history_id';
    the server's save dialog reads owner, type, parents, name, notes and history from either."""
    from openbis_hub.eln_template import defaults_from_notebook

    older = eln_notebook("a.ipynb", DATASETS[:2], {"object": "/DEMO/ANALYSIS/STEP1"}, history_id="hid-1")
    newer = eln_notebook("a.ipynb", DATASETS[:2], {"object": "/DEMO/ANALYSIS/STEP1"}, history_id="hid-1")
    save = newer["cells"][-1]
    assert any("'$name'" in line for line in save["source"])
    save["source"] = [
        line.replace("'$name'", "'name'").replace("'$history_id'", "'history_id'") for line in save["source"]
    ]
    assert defaults_from_notebook(older) == defaults_from_notebook(newer)
    defaults = defaults_from_notebook(newer)
    assert defaults["owner"] == {"object": "/DEMO/ANALYSIS/STEP1"} and defaults["type"] == "ANALYSIS_NOTEBOOK"
    assert defaults["history_id"] == "hid-1" and defaults["parents"] == [d["permId"] for d in DATASETS[:2]]


def test_the_pages_template_constants_are_generated_from_this_module():
    # the ELN-like page's cell ids and placeholders come from openbis_hub.eln_template
    from openbis_hub_dev.standin import template_js

    assert template_js.PATH.read_text() == template_js.render(), "run: python -m openbis_hub_dev.standin.template_js"
    assert '"resultDatasetHistoryId": "resultDatasetHistoryId"' in template_js.render()
