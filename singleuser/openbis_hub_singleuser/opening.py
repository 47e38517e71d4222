"""Open a notebook stored in an openBIS dataset, as the ELN's "Use Jupyter Notebook as Template" does.

The ELN rewrites the first line of three template cells (``metadata.code_cell_id``):
``fileName`` gets the new name, ``resultDatasetParents`` the source dataset, and
``resultDatasetHistoryId`` a new id unless the history is kept.  A notebook
made elsewhere gets the same facts in ``metadata.openbis``.  It is placed
without replacing anything (a taken name becomes ``name 2.ipynb``).
"""

from __future__ import annotations

import json
import posixpath
import uuid

from openbis_hub.errors import BadRequest, NotFound, PayloadTooLarge
from openbis_hub.openbis import OpenBISClient

from . import placement
from .downloads import safe_file_path, safe_folder
from .explorer import V3, check_id

MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024


def _set_first_line(cell: dict, line: str) -> None:
    source = cell.get("source", "")
    lines = source.splitlines(keepends=True) if isinstance(source, str) else list(source)
    rest = lines[1:] if lines else []
    cell["source"] = (
        [line + ("\n" if rest else ""), *rest]
        if isinstance(source, list)
        else line + ("\n" + "".join(rest) if rest else "")
    )


def rewrite(nb: dict, *, file_name: str, perm_id: str, source_path: str, keep_history: bool) -> dict:
    """The notebook as it is opened: template cells and ``metadata.openbis`` updated."""
    from openbis_hub.eln_template import defaults_from_notebook

    old_history = defaults_from_notebook(nb).get("history_id")
    history_id = old_history if keep_history and old_history else str(uuid.uuid4())
    for cell in nb.get("cells") or []:
        cell_id = (cell.get("metadata") or {}).get("code_cell_id")
        if cell.get("cell_type") != "code" or cell_id is None:
            continue
        if cell_id == "fileName":
            _set_first_line(cell, f"fileName={file_name!r}")
        elif cell_id == "resultDatasetParents":
            _set_first_line(cell, "resultDatasetParents=" + json.dumps([perm_id]))
        elif cell_id == "resultDatasetHistoryId":
            _set_first_line(cell, f"resultDatasetHistoryId={history_id!r}")
    meta = nb.setdefault("metadata", {})
    openbis = meta.get("openbis") if isinstance(meta.get("openbis"), dict) else {}
    openbis.update({"history_id": history_id, "parents": [perm_id]})
    openbis["opened_from"] = {"permId": perm_id, "path": source_path, "kept_history": bool(keep_history)}
    meta["openbis"] = openbis
    return nb


async def open_from_dataset(client: OpenBISClient, token: str, root_dir: str, body: dict) -> dict:
    """Fetch the ``.ipynb`` of a dataset and place it in the workspace; returns ``{path, permId, history_id}``."""
    import nbformat

    perm_id = check_id(body.get("permId"), "permId")
    _, folder = safe_folder(root_dir, body.get("folder") or "")
    keep_history = body.get("keep_history", False)
    if not isinstance(keep_history, bool):
        raise BadRequest("keep_history must be true or false.")
    found = await client.get(
        token, "DataSets", [{"@type": V3["dataset"][3], "permId": perm_id}], {"@type": V3["dataset"][2]}
    )
    if perm_id not in found:
        raise NotFound(f"openBIS has no dataset {perm_id} (any more): it was deleted, or you no longer have access.")
    notebooks = [
        f for f in await client.dataset_files(token, perm_id) if not f["directory"] and f["path"].endswith(".ipynb")
    ]
    wanted = body.get("file")
    if wanted is not None:
        safe_file_path(wanted)
        chosen = next((f for f in notebooks if f["path"] == wanted), None)
        if chosen is None:
            raise NotFound(f"Dataset {perm_id} has no notebook {wanted!r}.")
    elif len(notebooks) == 1:
        chosen = notebooks[0]
    elif not notebooks:
        raise NotFound(f"Dataset {perm_id} holds no notebook (.ipynb).")
    else:
        raise BadRequest(
            f"Dataset {perm_id} holds several notebooks; choose one: " + ", ".join(f["path"] for f in notebooks[:10])
        )
    if chosen["size"] > MAX_NOTEBOOK_BYTES:
        raise PayloadTooLarge(f"The notebook is larger than {MAX_NOTEBOOK_BYTES >> 20} MB.")
    chunks: list[bytes] = []
    size = 0

    def keep(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > MAX_NOTEBOOK_BYTES:
            raise PayloadTooLarge(f"The notebook is larger than {MAX_NOTEBOOK_BYTES >> 20} MB.")
        chunks.append(chunk)

    await client.download_file(token, perm_id, chosen["path"], keep)
    try:
        nb = nbformat.reads(b"".join(chunks).decode("utf-8"), as_version=4)
    except Exception:
        raise BadRequest(f"{chosen['path']} in dataset {perm_id} is not a valid notebook.") from None
    name = body.get("name") or posixpath.basename(chosen["path"])
    if not isinstance(name, str):
        raise BadRequest("name must be a file name.")
    if not name.endswith(".ipynb"):
        name += ".ipynb"
    content = rewrite(dict(nb), file_name=name, perm_id=perm_id, source_path=chosen["path"], keep_history=keep_history)
    try:
        path = placement.place(root_dir, folder, name, content)
    except placement.PlacementError as e:
        raise BadRequest(f"Cannot place the notebook: {e}.") from None
    return {
        "path": path,
        "permId": perm_id,
        "file": chosen["path"],
        "history_id": content["metadata"]["openbis"]["history_id"],
    }
