"""The openBIS ELN's notebook template: built here, read back in users' servers.

**The cells.** The ELN's "New Jupyter notebook" template
(``JupyterUtil.createJupyterNotebookContent``) keeps its variables in code cells
tagged with ``metadata.code_cell_id`` (:data:`CELL_IDS`) and names the owner in
its "Creates the result dataset" cell (``experiment= o.get_experiment('<id>')``
or ``sample= o.get_object('<id>')``). The demo's ELN-like page uses the same ids
and placeholders through a file generated from this module
(``dev/openbis_hub_dev/standin/eln/template-constants.js``).

**Building** (:func:`eln_notebook`, the integrators' API): the same cells in the
same order as the ELN's, so notebooks made here and in the ELN save back to
openBIS the same way. Nothing a caller sends becomes code. The owner and the
dataset ids must have openBIS's own formats (checked by :func:`validate_request`,
which :func:`eln_notebook` calls first), and every value is written into the
cells as a Python string literal built by :func:`_literal`, never pasted between
quotes.

**Reading back** (:func:`defaults_from_notebook`, Save to openBIS): values are
read with ``ast.literal_eval``; nothing in the notebook is run. A notebook may
also carry ``metadata.openbis`` (``owner``, ``parents``, ``name``, ``notes``,
``history_id``, ``type``), e.g. when it was not made from the template. Template
cells win over metadata; request fields win over both.

**Run All** (:func:`make_run_all_safe`): the ELN's optional session-refresh cell
is guarded so that it does not stop Run All.
"""

from __future__ import annotations

import ast
import re
import uuid
from typing import Any

from .errors import BadRequest

# code_cell_id -> key in the defaults
CELL_IDS = {
    "fileName": "file_name",
    "resultDatasetParents": "parents",
    "resultDatasetHistoryId": "history_id",
    "resultDatasetName": "name",
    "resultDatasetNotes": "notes",
}

# the ELN template's placeholders: they are not a name or notes anyone chose
PLACEHOLDERS = {
    "name": "Name your dataset!",
    "notes": "Write some notes or leave empty this property!",
}

MAX_DATASETS = 100
"""At most this many datasets per notebook; each adds up to six cells, one of them a download."""

MAX_ID_LENGTH = 500
"""Longest owner or dataset id accepted, far above real openBIS identifiers."""

_CODE = r"[A-Za-z0-9_.\-]+"  # openBIS codes: "A-Z, a-z, 0-9 and _, -, ." (its CODE_PATTERN_MESSAGE)
_PERM_ID = r"[0-9]{17}-[0-9]+"  # yyyyMMddHHmmssSSS-N, e.g. 20230101123456789-42

PERM_ID = re.compile(_PERM_ID)
"""An openBIS permId of an experiment, object or dataset, e.g. ``20230101123456789-42``."""

DATASET_ID = re.compile(_CODE)
"""A dataset's permId, which in openBIS is also its code: generated ones look like ``20230101123456789-42``,
codes set through the API may be any openBIS code. pybis looks either up with ``o.get_dataset(...)``."""

EXPERIMENT_ID = re.compile(rf"{_PERM_ID}|/{_CODE}/{_CODE}/{_CODE}")
"""An experiment (collection): permId, or identifier ``/SPACE/PROJECT/EXPERIMENT``."""

OBJECT_ID = re.compile(rf"{_PERM_ID}|(?:/{_CODE}){{0,3}}/(?:{_CODE}:)?{_CODE}")
"""An object (sample): permId, or identifier ``/SPACE/OBJECT``, ``/SPACE/PROJECT/OBJECT``, a shared ``/OBJECT``,
pybis' ELN-LIMS form ``/SPACE/PROJECT/EXPERIMENT/OBJECT``, each with an optional container:
``/SPACE/CONTAINER:OBJECT``."""

_OWNER_FORMATS = {
    "experiment": (
        EXPERIMENT_ID,
        "an openBIS experiment permId or identifier (like 20230101123456789-42 or /SPACE/PROJECT/EXPERIMENT)",
    ),
    "object": (
        OBJECT_ID,
        "an openBIS object permId or identifier (like 20230101123456789-42, /SPACE/OBJECT or /SPACE/PROJECT/OBJECT)",
    ),
}


def _shown(value) -> str:
    """``repr(value)`` cut to 80 characters, to name a bad value in a message without echoing all of it."""
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _check_id(value, field: str, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"'{field}' must be a string, not {type(value).__name__}.")
    # fullmatch, not match with '$': '$' also matches before a trailing newline
    if len(value) > MAX_ID_LENGTH or not pattern.fullmatch(value):
        raise BadRequest(f"'{field}' is not {what}: {_shown(value)}.")
    return value


def check_dataset_id(value, field: str = "datasets") -> str:
    """``value`` if it is a dataset permId or code (:data:`DATASET_ID`), else :class:`BadRequest` naming ``field``."""
    return _check_id(
        value,
        field,
        DATASET_ID,
        "an openBIS dataset permId or code (like 20230101123456789-42; letters, digits, '_', '-' and '.')",
    )


def check_owner(owner, field: str = "owner") -> dict:
    """``owner`` if it is ``{"experiment": id}`` or ``{"object": id}`` with an id in openBIS's format.

    The experiment id must match :data:`EXPERIMENT_ID`, the object id :data:`OBJECT_ID`;
    anything else is a :class:`BadRequest` naming ``field`` (``owner.object``, say).
    """
    if not (isinstance(owner, dict) and len(owner) == 1 and set(owner) <= set(_OWNER_FORMATS)):
        raise BadRequest(f"'{field}' must be {{'experiment': <id>}} or {{'object': <id>}}.")
    ((kind, value),) = owner.items()
    pattern, what = _OWNER_FORMATS[kind]
    return {kind: _check_id(value, f"{field}.{kind}", pattern, what)}


def validate_request(owner, datasets) -> tuple[dict, list[dict]]:
    """The owner and datasets of a notebook request, checked; :class:`BadRequest` naming the bad field otherwise.

    ``owner``: see :func:`check_owner`. ``datasets``: a list (``None`` for none) of at most
    :data:`MAX_DATASETS` items, each a dataset permId or ``{"permId": ..., "owner": {...}}``
    as :func:`eln_notebook` takes them; an item's ``owner`` is optional.
    Returns ``(owner, datasets)`` with the datasets as dicts.
    """
    owner = check_owner(owner)
    if datasets is None:
        datasets = []
    if not isinstance(datasets, list):
        raise BadRequest("'datasets' must be a list of dataset permIds.")
    if len(datasets) > MAX_DATASETS:
        raise BadRequest(
            f"Too many datasets: {len(datasets)}. A notebook takes at most {MAX_DATASETS} datasets;"
            " choose fewer or make several notebooks."
        )
    checked = []
    for i, ds in enumerate(datasets):
        field = f"datasets[{i}]"
        if isinstance(ds, dict):
            item = {"permId": check_dataset_id(ds.get("permId"), f"{field}.permId")}
            if ds.get("owner"):
                item["owner"] = check_owner(ds["owner"], f"{field}.owner")
        else:
            item = {"permId": check_dataset_id(ds, field)}
        checked.append(item)
    return owner, checked


def _literal(value: str, quote: str = "'") -> str:
    """``value`` as a Python string literal, delimited by ``quote`` when that needs no escapes.

    It is ``repr(value)``, so ``ast.literal_eval`` gives back ``value`` whatever it holds.
    With ``quote='"'`` a value without quotes gets double quotes instead of repr's single
    ones: the ELN writes the parents' list that way (``["20230101123456789-42"]``) and the
    cells stay identical to its template. The swap is safe: repr only picks single quotes
    around a value with a ``'`` if it also has a ``"``, so here no quote is in the value
    and the escapes inside mean the same between either kind of quote.
    """
    text = repr(str(value))
    if quote == '"' and text[0] == "'" and '"' not in value:
        text = '"' + text[1:-1] + '"'
    return text


def _markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": [text]}


def _code(source: list[str] | str, cell_id: str | None = None) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"collapsed": False, "code_cell_id": cell_id},
        "outputs": [],
        "source": [source] if isinstance(source, str) else source,
    }


def eln_notebook(
    file_name: str, datasets: list[dict], owner: dict, history_id: str | None = None, namespace: str = "$"
) -> dict:
    """The ELN template, as an nbformat 4 notebook dict.

    ``namespace`` prefixes the ELN's own property codes in the save cell: ``$`` as openBIS 20.10's
    ELN writes them (``$name``, ``$history_id``), ``""`` as openBIS 6 and 7's (``name``, ``history_id``).

    ``datasets``: ``[{"permId": ..., "owner": {"experiment"|"object": permId}}]`` (``owner`` optional);
    ``owner``: ``{"experiment": identifier}`` or ``{"object": identifier}``.
    Both are checked with :func:`validate_request` first, so a bad id is a :class:`BadRequest`
    and never reaches a cell; ``file_name`` and ``history_id`` are written as literals too.
    """
    owner, datasets = validate_request(owner, datasets)
    if namespace not in ("$", ""):
        raise ValueError("namespace must be '$' or ''")
    history_id = history_id or str(uuid.uuid4())
    parents = "[" + ", ".join(_literal(ds["permId"], '"') for ds in datasets) + "]"
    cells = [
        _markdown("# Jupyter notebook title, modify me!\n"),
        _markdown(
            "Variables used by other parts of this autogenerated notebook"
            " - Don't modify if you don't know what you are doing!)"
        ),
        _markdown("Description : fileName variable, indicates the name of the document to save"),
        _code(f"fileName={_literal(file_name)}", "fileName"),
        _markdown(
            "Description : resultDatasetParents variable, indicates the permIds of the parents of the result dataset"
        ),
        _code(f"resultDatasetParents={parents}", "resultDatasetParents"),
        _markdown(
            "Description : history identifier, different versions of the same notebook"
            " should share the same identifier to keep the history"
        ),
        _code(f"resultDatasetHistoryId={_literal(history_id)}", "resultDatasetHistoryId"),
        _markdown(
            "Description : resultDatasetName variable, indicates the name of the result dataset"
            " **to be set by the user**"
        ),
        _code(f"resultDatasetName={_literal(PLACEHOLDERS['name'])}", "resultDatasetName"),
        _markdown(
            "Description : resultDatasetNotes variable, indicates the notes of the result dataset"
            " **to be set by the user**"
        ),
        _code(f"resultDatasetNotes={_literal(PLACEHOLDERS['notes'])}", "resultDatasetNotes"),
        _markdown("## Connect to openBIS"),
        _code(["from pybis import Openbis\n", "o = Openbis()"]),
        _markdown("## openBIS session refresh (optional)"),
        _code(
            [
                "# Use this code to reconnect in case your openBIS session expires and you an error on the previous step.\n",
                'sessionToken = "write your session token here"\n',
                "o.set_token(token=sessionToken)",
            ]
        ),
        _markdown("## Datasets Information"),
    ]
    for i, ds in enumerate(datasets):
        perm_id = ds["permId"]  # checked: only letters, digits, '_', '-' and '.', so plain in Markdown too
        ds_owner = ds.get("owner") or {}
        cells.append(_markdown(f"Dataset {perm_id} Owner:"))
        if "object" in ds_owner:
            cells.append(_code([f"s{i} = o.get_object({_literal(ds_owner['object'])})\n", f"s{i}"]))
        elif "experiment" in ds_owner:
            cells.append(_code([f"s{i} = o.get_experiment({_literal(ds_owner['experiment'])})\n", f"s{i}.attrs"]))
        cells.append(_markdown(f"Dataset {perm_id}:"))
        cells.append(_code([f"ds{i} = o.get_dataset({_literal(perm_id)})\n", f"ds{i}.attrs"]))
        cells.append(_code(f'ds{i}.get_files(start_folder="/")'))
    cells.append(_markdown("## Datasets Download"))
    for i, _ in enumerate(datasets):
        cells.append(_code(f"ds{i}.download(files=ds{i}.file_list, destination='./', wait_until_finished=True)"))
    cells += [
        _markdown("## Process your data here"),
        _code(""),
        _markdown("## Saving the results"),
        _markdown(
            "The next cell stores a copy of this notebook as an html file,"
            " **save before executing this to get the lattest version as html**"
        ),
        _code(
            [
                "from nbconvert import HTMLExporter\n",
                "import codecs\n",
                "import nbformat\n",
                "exporter = HTMLExporter()\n",
                "output_notebook = nbformat.read(fileName, as_version=4)\n",
                "output, resources = exporter.from_notebook_node(output_notebook)\n",
                "codecs.open(fileName + '.html', 'w', encoding='utf-8').write(output)",
            ]
        ),
        _markdown("Sets the owner of the result dataset"),
    ]
    if "object" in owner:
        getter, keyword = f"o.get_object({_literal(owner['object'])})", "sample"
    else:
        getter, keyword = f"o.get_experiment({_literal(owner['experiment'])})", "experiment"
    cells += [
        _code([f"owner= {getter},\n", "owner"]),
        _markdown("Creates the result dataset"),
        _code(
            [
                "ds_new = o.new_dataset(\n",
                "type='ANALYSIS_NOTEBOOK',\n",
                f"{keyword}= {getter},\n",
                "parents=resultDatasetParents,\n",
                "files = [fileName, fileName + '.html'],\n",
                f"props={{'{namespace}name': resultDatasetName, 'notes': resultDatasetNotes,"
                f" '{namespace}history_id' : resultDatasetHistoryId }})\n",
                "ds_new.save()",
            ]
        ),
    ]
    return {
        "cells": cells,
        "metadata": {
            "autogenerated_by_openbis": True,
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {
                "codemirror_mode": {"name": "ipython", "version": 3},
                "file_extension": ".py",
                "mimetype": "text/x-python",
                "name": "python",
                "nbconvert_exporter": "python",
                "pygments_lexer": "ipython3",
                "version": "3.5.2",
            },
        },
        "nbformat": 4,
        "nbformat_minor": 2,
    }


# --- Run All through the ELN's notebook -------------------------------------------------------

_REFRESH_PLACEHOLDER = "write your session token here"
_REFRESH_CALL = "o.set_token(token=sessionToken)"
REFRESH_GUARD = f"if sessionToken != {_REFRESH_PLACEHOLDER!r}:  # openbis-hub renews your token by itself\n"


def make_run_all_safe(notebook: dict) -> list[int]:
    """Let "Run All" pass the ELN's optional session-refresh cell while the session is valid.

    As the ELN writes it, the cell calls ``o.set_token("write your session
    token here")``, which raises, so Run All stops before the dataset cells.
    Our servers renew the token themselves: the call now runs only once the
    researcher has put a token in.  Nothing else changes; each rewritten cell
    is recorded in ``metadata.openbis_hub.rewritten_cells`` with its original
    source.  Returns the indices of the rewritten cells.
    """
    rewritten = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        lines = source if isinstance(source, list) else source.splitlines(keepends=True)
        text = "".join(lines)
        if _REFRESH_PLACEHOLDER not in text or _REFRESH_CALL not in text or REFRESH_GUARD in text:
            continue
        new_lines = []
        for line in lines:
            if line.strip() == _REFRESH_CALL:
                new_lines += [REFRESH_GUARD, "    " + line.lstrip()]
            else:
                new_lines.append(line)
        cell["source"] = new_lines if isinstance(source, list) else "".join(new_lines)
        record = notebook.setdefault("metadata", {}).setdefault("openbis_hub", {}).setdefault("rewritten_cells", [])
        record.append(
            {
                "index": index,
                "reason": "Run All: the optional session refresh runs only once a token is put in",
                "original_source": lines,
            }
        )
        rewritten.append(index)
    return rewritten


# --- the name a researcher typed was taken ----------------------------------------------------


def note_taken_name(notebook: dict, folder: str, requested: str, name: str) -> bool:
    """Say in the notebook's first cell that ``requested`` was taken and the notebook is ``name``.

    The ELN opens the name its dry run got and cannot say why it differs from what the researcher
    typed, so the notebook does: a line under the title of the ELN's first (Markdown) cell.  A
    notebook that does not start with Markdown keeps its cells.  Either way
    ``metadata.openbis_hub.renamed`` records ``requested``, ``name`` and the cell's original source;
    a second rename (the server placing it beside a file that appeared meanwhile) updates the line,
    naming what was typed.  Returns whether a cell says it.
    """
    if requested == name:
        return False
    meta = notebook.setdefault("metadata", {}).setdefault("openbis_hub", {})
    renamed = meta.get("renamed")
    if not isinstance(renamed, dict):
        renamed = meta["renamed"] = {"requested": requested}
    renamed["name"] = name
    cells = notebook.get("cells") or []
    first = cells[0] if cells and isinstance(cells[0], dict) else None
    if first is None or first.get("cell_type") != "markdown":
        return False
    if "original_source" not in renamed:
        renamed["original_source"] = first.get("source", "")
    original = renamed["original_source"]
    lines = list(original) if isinstance(original, list) else str(original).splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    where = f" in “{folder}”" if folder else ""
    lines += ["\n", f"*“{renamed['requested']}” was taken{where}, so this notebook is “{name}”.*"]
    first["source"] = lines if isinstance(original, list) else "".join(lines)
    return True


# --- reading the template back --------------------------------------------

OWNER_GETTERS = {
    "get_experiment": "experiment",
    "get_collection": "experiment",
    "get_object": "object",
    "get_sample": "object",
}
OWNER_KEYWORDS = {"experiment": "experiment", "collection": "experiment", "sample": "object", "object": "object"}

_OWNER_RE = re.compile(r"""\.(get_experiment|get_collection|get_object|get_sample)\(\s*(['"])(.+?)\2\s*\)""")


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _assigned_literal(source: str) -> tuple[bool, Any]:
    """The literal assigned by the first ``name = <literal>`` statement of a cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        # a user edit broke the cell: try its first line alone, as the ELN rewrites it
        try:
            tree = ast.parse(source.splitlines()[0] if source else "")
        except (SyntaxError, IndexError):
            return False, None
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            try:
                return True, ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return False, None
    return False, None


def _owner_from_call(node: ast.AST) -> dict | None:
    """``o.get_experiment('<id>')`` → ``{"experiment": "<id>"}``."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in OWNER_GETTERS
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return {OWNER_GETTERS[node.func.attr]: node.args[0].value}
    return None


def _from_new_dataset_cell(source: str) -> dict:
    """Owner and type from an ``o.new_dataset(...)`` call."""
    found: dict = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return found
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "new_dataset"
        ):
            continue
        for keyword in node.keywords:
            if keyword.arg in OWNER_KEYWORDS and "owner" not in found:
                owner = _owner_from_call(keyword.value)
                if owner:
                    found["owner"] = owner
                elif isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                    found["owner"] = {OWNER_KEYWORDS[keyword.arg]: keyword.value.value}
            elif keyword.arg == "type" and isinstance(keyword.value, ast.Constant):
                if isinstance(keyword.value.value, str):
                    found["type"] = keyword.value.value
    return found


def _from_owner_cell(source: str) -> dict | None:
    """``owner= o.get_experiment('<id>'),`` (the template's "Sets the owner" cell)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        match = _OWNER_RE.search(source)
        return {OWNER_GETTERS[match.group(1)]: match.group(3)} if match else None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "owner" for t in node.targets):
            value = node.value
            if isinstance(value, ast.Tuple) and len(value.elts) == 1:
                value = value.elts[0]
            owner = _owner_from_call(value)
            if owner:
                return owner
    return None


def normalize_owner(owner: Any) -> dict | None:
    """Accept ``{"experiment"|"collection": id}`` or ``{"object"|"sample": id}``."""
    if not isinstance(owner, dict):
        return None
    for key, kind in OWNER_KEYWORDS.items():
        value = owner.get(key)
        if isinstance(value, str) and value.strip():
            return {kind: value.strip()}
    return None


def _clean(key: str, value: Any) -> Any:
    if key == "parents":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            return None
        return [str(p).strip() for p in value if isinstance(p, str) and p.strip()]
    if key == "owner":
        return normalize_owner(value)
    if value is None:
        return None
    if not isinstance(value, (str, int, float)):
        return None
    value = str(value)
    if value == PLACEHOLDERS.get(key):
        return None
    return value


def defaults_from_notebook(nb: dict) -> dict:
    """Save defaults found in the notebook: keys of ``CELL_IDS`` values, ``owner``, ``type``."""
    from_cells: dict = {}
    owner_cell = None
    for cell in nb.get("cells") or []:
        if cell.get("cell_type") != "code":
            continue
        source = _source(cell)
        cell_id = (cell.get("metadata") or {}).get("code_cell_id")
        if cell_id in CELL_IDS:
            ok, value = _assigned_literal(source)
            if ok:
                from_cells[CELL_IDS[cell_id]] = value
            continue
        if "new_dataset" in source:
            for key, value in _from_new_dataset_cell(source).items():
                from_cells.setdefault(key, value)
        elif owner_cell is None and "owner" in source:
            owner_cell = _from_owner_cell(source)
    if "owner" not in from_cells and owner_cell:
        from_cells["owner"] = owner_cell

    meta = (nb.get("metadata") or {}).get("openbis")
    meta = meta if isinstance(meta, dict) else {}
    defaults: dict = {}
    for key in ("owner", "parents", "name", "notes", "history_id", "type", "file_name"):
        value = _clean(key, from_cells.get(key))
        if value is None:
            value = _clean(key, meta.get(key))
        defaults[key] = value
    if defaults["parents"] is None:
        defaults["parents"] = []
    return defaults


def downloaded_datasets(nb: dict) -> list[dict]:
    """The datasets downloaded into this notebook (``metadata.openbis.datasets``, written by the side panel).

    ``{permId: {"permId", "path", "files"}}``; entries of another shape are skipped.
    """
    meta = (nb.get("metadata") or {}).get("openbis")
    found = meta.get("datasets") if isinstance(meta, dict) else None
    if not isinstance(found, dict):
        return []
    out = []
    for perm_id, entry in found.items():
        if isinstance(perm_id, str) and perm_id.strip() and isinstance(entry, dict):
            out.append({"permId": perm_id.strip(), "path": entry.get("path"), "files": entry.get("files")})
    return out
