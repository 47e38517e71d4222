"""Read the save-to-openBIS defaults out of a notebook, never executing it.

The ELN's "New Jupyter notebook" template keeps its variables in code cells
tagged with ``metadata.code_cell_id`` (``fileName``, ``resultDatasetParents``,
``resultDatasetHistoryId``, ``resultDatasetName``, ``resultDatasetNotes``) and
names the owner in its "Creates the result dataset" cell
(``experiment= o.get_experiment('<id>')`` or ``sample= o.get_object('<id>')``).
Values are read with ``ast.literal_eval``; nothing in the notebook is run.

A notebook may also carry ``metadata.openbis`` (``owner``, ``parents``,
``name``, ``notes``, ``history_id``, ``type``), e.g. when it was not made from
the template.  Template cells win over metadata; request fields win over both.
"""

from __future__ import annotations

import ast
import re
from typing import Any

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
    "name": {"Name your dataset!"},
    "notes": {"Write some notes or leave empty this property!"},
}

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
    if value in PLACEHOLDERS.get(key, ()):
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
