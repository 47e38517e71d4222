"""What the openBIS side panel shows: a lazy tree, a search, entity details, dataset types.

Everything goes through the shared :class:`openbis_hub.openbis.OpenBISClient`
with the user's own token, in the V3 shapes pybis and the V3 JavaScript facade
send; the answers are boiled down to the few fields the panel shows, so no
answer of openBIS reaches the browser as it came.

Tree levels (``kind`` of a node and of its children)::

    root -> space -> project -> collection -> object -> dataset
                                   \\-> dataset (directly in the collection)
"""

from __future__ import annotations

import re

from openbis_hub.errors import BadRequest, NotFound
from openbis_hub.openbis import OpenBISClient

PAGE = 50  # children per request; the panel asks for more with ``start``
MAX_PAGE = 200
SEARCH_COUNT = 20  # hits per kind
MAX_QUERY = 200
MAIN_PROPERTIES = 6  # properties shown under an entity in the tree
MAX_VALUE = 300  # characters of one property value sent to the browser

KINDS = ("space", "project", "collection", "object", "dataset")
# kind -> (V3 entity of search/get, its search criteria, its fetch options, its id type)
V3 = {
    "space": ("Spaces", "as.dto.space.search.SpaceSearchCriteria", "as.dto.space.fetchoptions.SpaceFetchOptions",
              "as.dto.space.id.SpacePermId"),
    "project": ("Projects", "as.dto.project.search.ProjectSearchCriteria",
                "as.dto.project.fetchoptions.ProjectFetchOptions", "as.dto.project.id.ProjectPermId"),
    "collection": ("Experiments", "as.dto.experiment.search.ExperimentSearchCriteria",
                   "as.dto.experiment.fetchoptions.ExperimentFetchOptions", "as.dto.experiment.id.ExperimentPermId"),
    "object": ("Samples", "as.dto.sample.search.SampleSearchCriteria", "as.dto.sample.fetchoptions.SampleFetchOptions",
               "as.dto.sample.id.SamplePermId"),
    "dataset": ("DataSets", "as.dto.dataset.search.DataSetSearchCriteria",
                "as.dto.dataset.fetchoptions.DataSetFetchOptions", "as.dto.dataset.id.DataSetPermId"),
}  # fmt: skip
_TYPE_FETCH = {
    "collection": "as.dto.experiment.fetchoptions.ExperimentTypeFetchOptions",
    "object": "as.dto.sample.fetchoptions.SampleTypeFetchOptions",
    "dataset": "as.dto.dataset.fetchoptions.DataSetTypeFetchOptions",
}
_PERSON = {"@type": "as.dto.person.fetchoptions.PersonFetchOptions"}
_PROPERTIES = {"@type": "as.dto.property.fetchoptions.PropertyFetchOptions"}
# permIds of openBIS entities, space codes, identifiers: what a node id may look like
_ID_RE = re.compile(r"[A-Za-z0-9_.$/+-]{1,255}")


def check_id(value: object, what: str = "id") -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value) or ".." in value:
        raise BadRequest(f"{what} must be an openBIS permId, code or identifier.")
    return value


def check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}.")
    return kind  # type: ignore[return-value]


def page_args(start: object, count: object) -> tuple[int, int]:
    try:
        start_i, count_i = int(start or 0), int(count or PAGE)
    except (TypeError, ValueError):
        raise BadRequest("start and count must be whole numbers.") from None
    if start_i < 0 or not 0 < count_i <= MAX_PAGE:
        raise BadRequest(f"start must be >= 0 and count between 1 and {MAX_PAGE}.")
    return start_i, count_i


def fetch_options(kind: str, *, start: int | None = None, count: int | None = None, details: bool = False) -> dict:
    fo: dict = {"@type": V3[kind][2], "registrator": _PERSON}
    if kind in _TYPE_FETCH:
        fo["type"] = {"@type": _TYPE_FETCH[kind]}
        fo["properties"] = _PROPERTIES
    if kind == "dataset":
        fo["sample"] = {"@type": V3["object"][2]}
        fo["experiment"] = {"@type": V3["collection"][2]}
        fo["physicalData"] = {"@type": "as.dto.dataset.fetchoptions.PhysicalDataFetchOptions"}
    if kind == "object":
        fo["experiment"] = {"@type": V3["collection"][2]}
    if kind == "project":
        fo["space"] = {"@type": V3["space"][2]}
    if details and kind in ("object", "dataset"):
        relative = {"@type": V3[kind][2], "type": {"@type": _TYPE_FETCH[kind]}, "properties": _PROPERTIES}
        fo["parents"] = relative
        fo["children"] = dict(relative)
    if start is not None:
        fo["from"] = start
    if count is not None:
        fo["count"] = count
    return fo


def _leaf(criteria_type: str, field_name: str, value: str, match: str = "StringEqualToValue") -> dict:
    field_type = "PROPERTY" if "Property" in criteria_type else "ATTRIBUTE"
    return {
        "@type": criteria_type,
        "fieldName": field_name,
        "fieldType": field_type,
        "fieldValue": {"@type": f"as.dto.common.search.{match}", "value": value},
    }


def _perm_id_leaf(value: str) -> dict:
    return _leaf("as.dto.common.search.PermIdSearchCriteria", "perm_id", value)


def _criteria(kind: str, criteria: list[dict], operator: str = "AND") -> dict:
    return {"@type": V3[kind][1], "operator": operator, "criteria": criteria}


def _parent_criteria(kind: str, parent_kind: str, parent_id: str) -> dict:
    leaf = (
        _leaf("as.dto.common.search.CodeSearchCriteria", "code", parent_id)
        if parent_kind == "space"
        else _perm_id_leaf(parent_id)
    )
    return _criteria(kind, [_criteria(parent_kind, [leaf])])


def _perm(o: dict, key: str = "permId") -> str | None:
    value = o.get(key)
    if isinstance(value, dict):
        value = value.get(key) if key != "permId" else value.get("permId")
    return value if isinstance(value, str) else None


def _short(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_VALUE:
        return value[:MAX_VALUE] + "…"
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)[:MAX_VALUE]


def summary(kind: str, o: dict) -> dict:
    """The fields the panel shows of one entity."""
    identifier = o.get("identifier")
    identifier = identifier.get("identifier") if isinstance(identifier, dict) else None
    entity_type = o.get("type")
    props = o.get("properties") if isinstance(o.get("properties"), dict) else {}
    registrator = o.get("registrator")
    node = {
        "kind": kind,
        "permId": _perm(o) or o.get("code"),
        "code": o.get("code"),
        "identifier": identifier or (f"/{o.get('code')}" if kind == "space" else None),
        "type": entity_type.get("code") if isinstance(entity_type, dict) else None,
        "name": props.get("$NAME") or props.get("NAME"),
        "properties": {k: _short(v) for k, v in list(props.items())[:MAIN_PROPERTIES] if v not in (None, "")},
        "registrator": registrator.get("userId") if isinstance(registrator, dict) else None,
        "registrationDate": o.get("registrationDate"),
        "leaf": False,
    }
    if kind == "dataset":
        physical = o.get("physicalData")
        node["size"] = physical.get("size") if isinstance(physical, dict) else None
        sample, experiment = o.get("sample"), o.get("experiment")
        node["owner"] = (
            {"object": _ident(sample)}
            if isinstance(sample, dict)
            else {"experiment": _ident(experiment)}
            if isinstance(experiment, dict)
            else None
        )
    return node


def _ident(o: dict) -> str | None:
    identifier = o.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("identifier"), str):
        return identifier["identifier"]
    return _perm(o)


async def children(client: OpenBISClient, token: str, kind: str, node_id: str | None, start: int, count: int) -> dict:
    """The children of a node (``kind`` None: the spaces), one page of each child kind."""
    groups: list[tuple[str, dict]] = []
    if kind == "root":
        groups.append(("space", _criteria("space", [])))
    elif kind == "space":
        groups.append(("project", _parent_criteria("project", "space", node_id)))
    elif kind == "project":
        groups.append(("collection", _parent_criteria("collection", "project", node_id)))
    elif kind == "collection":
        groups.append(("object", _parent_criteria("object", "collection", node_id)))
        groups.append(("dataset", _parent_criteria("dataset", "collection", node_id)))
    elif kind == "object":
        groups.append(("dataset", _parent_criteria("dataset", "object", node_id)))
    else:
        raise BadRequest("Datasets have files, not children: ask for openbis/files.")
    nodes: list[dict] = []
    total = 0
    for child_kind, criteria in groups:
        objects, n = await client.search(
            token, V3[child_kind][0], criteria, fetch_options(child_kind, start=start, count=count)
        )
        found = [summary(child_kind, o) for o in objects]
        if kind == "collection" and child_kind == "dataset":
            # the collection's own datasets; those of its objects show under the objects
            found = [d for d in found if not (d.get("owner") or {}).get("object")]
            n = len(found) if n <= start + count else n
        nodes.extend(found)
        total += n
    return {"kind": kind, "id": node_id, "start": start, "count": count, "total": total, "children": nodes}


async def search(client: OpenBISClient, token: str, query: str, kinds: list[str] | None = None) -> dict:
    """Collections, objects and datasets whose code, name or permId matches ``query``."""
    query = (query or "").strip()
    if not query or len(query) > MAX_QUERY:
        raise BadRequest(f"Type 1 to {MAX_QUERY} characters to search for.")
    kinds = kinds or ["collection", "object", "dataset"]
    hits: list[dict] = []
    totals: dict[str, int] = {}
    for kind in kinds:
        check_kind(kind)
        leaves = [
            _leaf("as.dto.common.search.CodeSearchCriteria", "code", query, "StringContainsValue"),
            _perm_id_leaf(query),
        ]
        if kind in _TYPE_FETCH:
            leaves.append(
                _leaf("as.dto.common.search.StringPropertySearchCriteria", "$NAME", query, "StringContainsValue")
            )
        objects, n = await client.search(
            token, V3[kind][0], _criteria(kind, leaves, "OR"), fetch_options(kind, start=0, count=SEARCH_COUNT)
        )
        hits.extend(summary(kind, o) for o in objects)
        totals[kind] = n
    return {"query": query, "hits": hits, "totals": totals}


async def entity(client: OpenBISClient, token: str, kind: str, entity_id: str) -> dict:
    """One entity with all its properties, and for objects and datasets their parents and children."""
    id_type = V3[kind][3]
    key = "identifier" if "/" in entity_id and kind != "space" else "permId"
    if key == "identifier":
        id_type = id_type.replace("PermId", "Identifier")
    found = await client.get(
        token, V3[kind][0], [{"@type": id_type, key: entity_id}], fetch_options(kind, details=True)
    )
    if not found:
        raise NotFound(f"openBIS has no {kind} {entity_id} (deleted, or not visible to you).")
    o = next(iter(found.values()))
    node = summary(kind, o)
    props = o.get("properties") if isinstance(o.get("properties"), dict) else {}
    node["properties"] = {k: _short(v) for k, v in props.items() if v not in (None, "")}
    if kind in ("object", "dataset"):
        node["parents"] = [summary(kind, p) for p in o.get("parents") or [] if isinstance(p, dict)]
        node["children"] = [summary(kind, c) for c in o.get("children") or [] if isinstance(c, dict)]
    return node


async def dataset_types(client: OpenBISClient, token: str) -> list[dict]:
    """Every dataset type with its property assignments (vocabulary terms included), in assignment order."""
    fo = {
        "@type": "as.dto.dataset.fetchoptions.DataSetTypeFetchOptions",
        "propertyAssignments": {
            "@type": "as.dto.property.fetchoptions.PropertyAssignmentFetchOptions",
            "propertyType": {
                "@type": "as.dto.property.fetchoptions.PropertyTypeFetchOptions",
                "vocabulary": {
                    "@type": "as.dto.vocabulary.fetchoptions.VocabularyFetchOptions",
                    "terms": {"@type": "as.dto.vocabulary.fetchoptions.VocabularyTermFetchOptions"},
                },
            },
        },
    }
    objects, _ = await client.search(
        token, "DataSetTypes", {"@type": "as.dto.dataset.search.DataSetTypeSearchCriteria", "criteria": []}, fo
    )
    types = []
    for t in objects:
        code = t.get("code")
        if not isinstance(code, str):
            continue
        types.append({"code": code, "description": t.get("description") or "", "properties": assignments(t)})
    return sorted(types, key=lambda t: t["code"])


def assignments(entity_type: dict) -> list[dict]:
    """``[{code, label, description, data_type, mandatory, ordinal, section, terms}]`` of an
    entity type's V3 ``propertyAssignments``, in their order; the save dialog's form and the
    checks before a save both read it."""
    out = []
    for pa in entity_type.get("propertyAssignments") or []:
        if not isinstance(pa, dict) or not isinstance(pa.get("propertyType"), dict):
            continue
        pt = pa["propertyType"]
        code = pt.get("code") or (pt.get("permId") or {}).get("permId")
        if not isinstance(code, str):
            continue
        vocabulary = pt.get("vocabulary") if isinstance(pt.get("vocabulary"), dict) else None
        terms = None
        if vocabulary is not None:
            terms = [
                {"code": term.get("code"), "label": term.get("label") or term.get("code")}
                for term in sorted(vocabulary.get("terms") or [], key=lambda t: t.get("ordinal") or 0)
                if isinstance(term, dict) and isinstance(term.get("code"), str)
            ]
        out.append(
            {
                "code": code,
                "label": pt.get("label") or code,
                "description": pt.get("description") or "",
                "data_type": pt.get("dataType"),
                "mandatory": bool(pa.get("mandatory")),
                "ordinal": pa.get("ordinal"),
                "section": pa.get("section"),
                "terms": terms,
            }
        )
    out.sort(key=lambda p: (p["ordinal"] is None, p["ordinal"] or 0))
    return out


_INTEGER = re.compile(r"[+-]?\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?( ?[+-]\d{2}:?\d{2}|Z)?")


def invalid_values(props: list[dict], values: dict) -> dict[str, str]:
    """``{code: why}`` for each value that openBIS would refuse for its data type (empty: all fine)."""
    by_code = {p["code"].upper(): p for p in props}
    problems: dict[str, str] = {}
    for code, value in values.items():
        p = by_code.get(str(code).upper())
        if p is None or value is None or (isinstance(value, str) and not value.strip()):
            continue
        text = str(value).strip()
        data_type = p.get("data_type")
        if data_type == "INTEGER" and not _INTEGER.fullmatch(text):
            problems[p["code"]] = "must be a whole number"
        elif data_type == "REAL":
            try:
                float(text)
            except ValueError:
                problems[p["code"]] = "must be a number"
        elif data_type == "BOOLEAN" and text.lower() not in ("true", "false"):
            problems[p["code"]] = "must be true or false"
        elif data_type == "DATE" and not _DATE.fullmatch(text):
            problems[p["code"]] = "must be a date, YYYY-MM-DD"
        elif data_type == "TIMESTAMP" and not _TIMESTAMP.fullmatch(text):
            problems[p["code"]] = "must be a date and time, YYYY-MM-DD HH:MM"
        elif data_type == "CONTROLLEDVOCABULARY" and p.get("terms") is not None:
            codes = [t["code"] for t in p["terms"]]
            if text.upper() not in codes:
                problems[p["code"]] = "must be one of " + ", ".join(codes)
    return problems
