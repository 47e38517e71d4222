"""Register a notebook as an openBIS dataset with pybis (blocking: run in an executor).

pybis prints the whole JSON-RPC request, token included, to stdout whenever
openBIS answers with an error; :func:`silence_pybis` stops that in the server
process, and every message that reaches a log line or an HTTP answer goes
through :func:`scrub` first.
"""

from __future__ import annotations

import logging
import os
import re

from tornado import web

from openbis_hub.errors import OpenBISHubError

from .explorer import assignments

log = logging.getLogger("openbis_hub_singleuser")

# which property code holds which field, newest openBIS first is irrelevant:
# the first code the dataset type actually has wins
PROPERTY_CANDIDATES = {
    "name": ("$NAME", "NAME"),
    "notes": ("NOTES", "$NOTES"),
    "history_id": ("$HISTORY_ID", "HISTORY_ID"),
}

_TOKEN_RE = re.compile(r"(\$pat-)?[^\s'\"]+-\d{15}x[0-9A-Fa-f]{32}")


class SaveError(OpenBISHubError, web.HTTPError):
    """Saving to openBIS failed: ``message`` is safe to show, ``extra`` goes into the JSON answer.

    Also a tornado ``HTTPError``, so tornado answers with its status and logs
    one warning line (no traceback); the handlers' ``write_error`` renders it.
    """

    def __init__(self, message: str, status: int | None = None, **extra):
        OpenBISHubError.__init__(self, message, status)
        # tornado %-formats log_message when it logs: a '%' in a message must stay a '%'
        web.HTTPError.__init__(self, self.status, message.replace("%", "%%"))
        self.extra = extra


def scrub(text: str, token: str | None = None) -> str:
    if token:
        text = text.replace(token, "***")
    return _TOKEN_RE.sub("***", text)


_silenced = False


def silence_pybis() -> None:
    """Replace ``print`` in pybis' modules: it dumps requests with tokens on errors."""
    global _silenced
    if _silenced:
        return
    import importlib

    def quiet_print(*args, **kwargs):
        log.debug("pybis printed a message (suppressed: it may contain a token)")

    for name in ("pybis.pybis", "pybis.dataset", "pybis.openbis_object", "pybis.entity_type", "pybis.things"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.print = quiet_print
    _silenced = True


def classify(exc: Exception, token: str | None = None) -> SaveError:
    """Turn a pybis / requests exception into a :class:`SaveError`."""
    if isinstance(exc, SaveError):
        return exc
    try:
        import requests

        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            return SaveError(status=502, message="openBIS is unreachable (" + scrub(str(exc), token)[:300] + ")")
    except ImportError:  # pragma: no cover
        pass
    text = scrub(str(exc), token)
    lower = text.lower()
    if any(
        marker in lower
        for marker in (
            "session no longer available",
            "session is no longer valid",
            "token is no longer valid",
            "is invalid: user is not logged in",
            "session expired",
            "personal access token",
            "no 'sessiontoken' specified",
        )
    ):
        return expired_token_error()
    if any(marker in lower for marker in ("no such", "not found", "does not exist", "unknown")):
        return SaveError(status=400, message=text)
    if isinstance(exc, ValueError):
        return SaveError(status=400, message="openBIS refused the dataset: " + text)
    return SaveError(status=502, message=f"openBIS request failed ({type(exc).__name__}): {text}")


def expired_token_error() -> SaveError:
    return SaveError(
        status=401,
        message="Your openBIS session has expired or is no longer valid. "
        "Reopen this notebook from the openBIS ELN (or log in to the hub again) to get a fresh session, "
        "then save again.",
    )


def connect(url: str, token: str, ca_bundle: str | None = None):
    """An ``Openbis`` connected with ``token``; raises :class:`SaveError`."""
    silence_pybis()
    from pybis import Openbis

    if not token:
        raise expired_token_error()
    kwargs = {"verify_certificates": ca_bundle if ca_bundle else True}
    if url.startswith("http://"):
        kwargs["allow_http_but_do_not_use_this_in_production_and_only_within_safe_networks"] = True
    try:
        return Openbis(url, token=token, **kwargs)
    except Exception as e:
        raise classify(e, token) from None


def property_assignments(o, type_code: str, token: str | None = None) -> list[dict]:
    """``[{code, label, mandatory, data_type}]`` of a dataset type, in order."""
    try:
        dataset_type = o.get_dataset_type(type_code)
    except Exception as e:
        err = classify(e, token)
        if err.status == 400:
            raise SaveError(status=400, message=f"openBIS has no dataset type {type_code!r}.") from None
        raise err from None
    # pybis keeps the V3 answer's propertyAssignments as they came
    return assignments({"propertyAssignments": dataset_type.__dict__.get("_propertyAssignments") or []})


def property_codes(assignments: list[dict]) -> dict:
    """Map ``name``/``notes``/``history_id`` to the codes this openBIS uses (or None)."""
    codes = {p["code"].upper() for p in assignments}
    found = {}
    for field, candidates in PROPERTY_CANDIDATES.items():
        found[field] = next((c for c in candidates if c in codes), None)
    return found


def missing_mandatory(assignments: list[dict], props: dict) -> list[str]:
    given = {k.upper(): v for k, v in props.items()}
    return [
        p["code"]
        for p in assignments
        if p["mandatory"] and (given.get(p["code"].upper()) is None or str(given.get(p["code"].upper())).strip() == "")
    ]


def type_info(url: str, token: str, ca_bundle: str | None, type_code: str) -> dict:
    o = connect(url, token, ca_bundle)
    assignments = property_assignments(o, type_code, token)
    return {"properties": assignments, "property_codes": property_codes(assignments)}


def plan_properties(type_code: str, assignments: list[dict], fields: dict, extra_properties: dict) -> dict:
    """``{code: value}`` to register: ``fields`` (name/notes/history_id) mapped to the type's codes,
    ``extra_properties`` by code; raises :class:`SaveError` (400) for unknown codes and missing mandatory ones.
    """
    codes = property_codes(assignments)
    known = {p["code"].upper(): p["code"] for p in assignments}
    props: dict = {}
    for field, value in fields.items():
        code = codes.get(field)
        if value in (None, ""):
            continue
        if code is None:
            log.info("Dataset type %s has no property for %s; not set", type_code, field)
            continue
        props[code] = value
    unknown = []
    for code, value in (extra_properties or {}).items():
        if value in (None, ""):
            continue
        if code.upper() not in known:
            unknown.append(code)
            continue
        props[known[code.upper()]] = value
    if unknown:
        raise SaveError(status=400, message=f"Dataset type {type_code} has no properties {', '.join(sorted(unknown))}.")
    missing = missing_mandatory(assignments, props)
    if missing:
        raise SaveError(
            status=400,
            message=f"Mandatory properties of {type_code} are missing: {', '.join(missing)}.",
            missing=missing,
        )
    return props


def typed_values(assignments: list[dict], props: dict) -> dict:
    """Values as pybis checks them: numbers for INTEGER and REAL, booleans for BOOLEAN (the form sends text)."""
    types = {p["code"].upper(): p.get("data_type") for p in assignments}
    out = {}
    for code, value in props.items():
        data_type = types.get(code.upper())
        try:
            if data_type == "INTEGER" and isinstance(value, str):
                value = int(value.strip())
            elif data_type == "REAL" and isinstance(value, str):
                value = float(value.strip())
            elif data_type == "BOOLEAN" and isinstance(value, str):
                value = value.strip().lower() == "true"
        except ValueError:
            raise SaveError(status=400, message=f"{code} must be a {data_type.lower()} value.") from None
        out[code] = value
    return out


def register_dataset(
    url: str,
    token: str,
    ca_bundle: str | None,
    *,
    type_code: str,
    owner: dict,
    parents: list[str],
    fields: dict,
    extra_properties: dict,
    files: list[str],
) -> dict:
    """Check, then create the dataset; returns ``{permId, properties}``.

    ``fields`` holds ``name``/``notes``/``history_id``, mapped to the property
    codes the type has; ``extra_properties`` are set by code as given.
    """
    o = connect(url, token, ca_bundle)
    assignments = property_assignments(o, type_code, token)
    props = typed_values(assignments, plan_properties(type_code, assignments, fields, extra_properties))
    kwargs = {}
    if parents:
        kwargs["parents"] = parents  # pybis fails on parents=None: no parents means no keyword
    if "experiment" in owner:
        kwargs["experiment"] = owner["experiment"]
    else:
        kwargs["sample"] = owner["object"]
    try:
        dataset = o.new_dataset(
            type=type_code,
            files=files,
            props={code.lower(): value for code, value in props.items()},
            **kwargs,
        )
        dataset.save()
    except Exception as e:
        err = classify(e, token)
        lower = err.message.lower()
        if err.status == 400 and ("experiment" in lower or "sample" in lower or "object" in lower):
            raise SaveError(status=400, message=f"The owner {owner} was not found in openBIS: {err.message}") from None
        raise err from None
    perm_id = dataset.permId
    if not perm_id:
        raise SaveError(status=502, message="openBIS did not return a permId for the new dataset.")
    return {"permId": perm_id, "properties": props, "files": [os.path.basename(f) for f in files]}
