"""The openBIS V3 JSON-RPC methods (application server and data store server)."""

from __future__ import annotations

import re

from .dto import DtoBuilder, jackson, search_result
from .store import (
    AUTHORIZATION_FAILURE,
    OBJECT_NOT_FOUND,
    USER_FAILURE,
    DataSet,
    EntityType,
    Experiment,
    PersonalAccessToken,
    Project,
    PropertyType,
    Sample,
    Space,
    StandInFault,
    Store,
    Vocabulary,
    VocabularyTerm,
)


class MethodNotFound(Exception):
    pass


# ---------------------------------------------------------------------- criteria
def _leaf_value(crit):
    fv = crit.get("fieldValue")
    if isinstance(fv, dict):
        return fv.get("@type", "").rsplit(".", 1)[-1], fv.get("value")
    return "StringEqualToValue", fv


def _compare(kind, wanted, actual, case_insensitive=False) -> bool:
    if kind == "AnyStringValue" or kind == "AnyFieldValue":
        return actual is not None
    if actual is None or wanted is None:
        return False
    if isinstance(wanted, list):
        return any(_compare(kind, w, actual, case_insensitive) for w in wanted)
    a, w = str(actual), str(wanted)
    if case_insensitive:
        a, w = a.upper(), w.upper()
    if kind in ("StringEqualToValue", "StringFieldValue"):
        return a == w
    if kind == "StringStartsWithValue":
        return a.startswith(w)
    if kind == "StringEndsWithValue":
        return a.endswith(w)
    if kind in ("StringContainsValue", "StringContainsExactlyValue"):
        return w in a
    if kind.startswith("Number"):
        try:
            fa, fw = float(a), float(w)
        except ValueError:
            return False
        return {
            "NumberEqualToValue": fa == fw,
            "NumberGreaterThanValue": fa > fw,
            "NumberGreaterThanOrEqualToValue": fa >= fw,
            "NumberLessThanValue": fa < fw,
            "NumberLessThanOrEqualToValue": fa <= fw,
        }.get(kind, fa == fw)
    return a == w


def _kind_of(obj) -> str:
    return {
        Space: "Space",
        Project: "Project",
        Experiment: "Experiment",
        Sample: "Sample",
        DataSet: "DataSet",
        EntityType: "EntityType",
        PersonalAccessToken: "PersonalAccessToken",
        PropertyType: "PropertyType",
        Vocabulary: "Vocabulary",
        VocabularyTerm: "VocabularyTerm",
    }.get(type(obj), "")


def _related(obj, rel: str):
    """Objects related to ``obj`` via the relation named by a criteria @type; None = ignore."""
    kind = _kind_of(obj)
    if rel in ("Sample", "Object") and kind == "Sample":
        return [obj]
    if rel == "DataSet" and kind == "DataSet":
        return [obj]
    if rel in ("Experiment", "Collection") and kind == "Experiment":
        return [obj]
    if rel == "Project" and kind == "Project":
        return [obj]
    if rel == "Space" and kind == "Space":
        return [obj]
    if rel == "PersonalAccessToken" and kind == "PersonalAccessToken":
        return [obj]
    if rel.endswith("Type") and rel != "PropertyType":
        if kind == "EntityType":
            return [obj]
        t = getattr(obj, "type", None)
        return [t] if t is not None else []
    if rel in ("PropertyType",) and kind == "PropertyType":
        return [obj]
    if rel in ("Vocabulary", "VocabularyTerm") and kind == rel:
        return [obj]
    if rel == "Vocabulary" and kind == "VocabularyTerm":
        return [obj.vocabulary] if obj.vocabulary is not None else []
    if rel == "Space":
        sp = getattr(obj, "space", None)
        return [sp] if sp is not None else []
    if rel == "Project":
        pr = getattr(obj, "project", None)
        return [pr] if pr is not None else []
    if rel == "Experiment":
        ex = getattr(obj, "experiment", None)
        return [ex] if ex is not None else []
    if rel == "Sample":
        sa = getattr(obj, "sample", None)
        return [sa] if sa is not None else []
    if rel in ("SampleParents", "DataSetParents"):
        return list(getattr(obj, "parents", []))
    if rel in ("SampleChildren", "DataSetChildren"):
        return list(getattr(obj, "children", []))
    if rel in ("PhysicalData",):
        return [obj]
    if rel in ("SampleContainer", "DataSetContainer", "Tag"):
        return []
    return None


def matches(obj, crit: dict) -> bool:
    t = (crit.get("@type") or "").rsplit(".", 1)[-1]
    name = t[: -len("SearchCriteria")] if t.endswith("SearchCriteria") else t
    # ---- leaves
    if name in ("Code", "Codes"):
        kind, value = _leaf_value(crit)
        return _compare(kind, value, getattr(obj, "code", None), True)
    if name in ("PermId", "PermIds"):
        kind, value = _leaf_value(crit)
        actual = getattr(obj, "perm_id", None) or getattr(obj, "hash", None)
        return _compare(kind, value, actual, isinstance(obj, (EntityType, Space)))
    if name == "Identifier":
        kind, value = _leaf_value(crit)
        return _compare(kind, value, getattr(obj, "identifier", None), True)
    if name == "Id":
        ident = crit.get("fieldValue") or {}
        if not isinstance(ident, dict):
            return True
        for attr in ("permId", "identifier", "code"):
            if attr in ident:
                actual = getattr(obj, {"permId": "perm_id"}.get(attr, attr), None)
                if attr == "permId" and actual is None:
                    actual = getattr(obj, "code", None) or getattr(obj, "hash", None)
                return actual is not None and str(actual).upper() == str(ident[attr]).upper()
        return True
    if name == "PersonalAccessTokenSessionName":
        kind, value = _leaf_value(crit)
        return _compare(kind, value, getattr(obj, "session_name", None))
    if name in ("UserId",):
        kind, value = _leaf_value(crit)
        return _compare(kind, value, getattr(obj, "owner", None) or getattr(obj, "user_id", None))
    if name.endswith("Property") and name != "AnyProperty":
        props = getattr(obj, "properties", None) or {}
        kind, value = _leaf_value(crit)
        code = (crit.get("fieldName") or "").upper()
        return _compare(kind, value, props.get(code), kind != "StringEqualToValue")
    if name in ("AnyProperty", "AnyField"):
        props = getattr(obj, "properties", None) or {}
        kind, value = _leaf_value(crit)
        return any(_compare(kind, value, v, True) for v in props.values()) or (
            name == "AnyField"
            and any(_compare(kind, value, getattr(obj, a, None), True) for a in ("code", "perm_id", "identifier"))
        )
    if name == "Status":
        return True
    # ---- relations / groups
    subs = crit.get("criteria") or []
    op = (crit.get("operator") or "AND").upper()
    related = _related(obj, name)
    if related is None:
        return True  # criteria this stand-in does not know are ignored
    if not subs:
        return True

    def group(target):
        results = (matches(target, c) for c in subs)
        return any(results) if op == "OR" else all(results)

    return any(group(r) for r in related)


# ---------------------------------------------------------------------- API
class Api:
    def __init__(self, store: Store):
        self.store = store

    # -------------------------------------------------------------- helpers
    def _session(self, params):
        token = params[0] if params else None
        return self.store.get_session(token)

    @staticmethod
    def _ids(params, idx=1):
        ids = params[idx] if len(params) > idx else []
        if isinstance(ids, dict):
            ids = [ids]
        return ids or []

    @staticmethod
    def _fo(params, idx=2):
        return params[idx] if len(params) > idx and isinstance(params[idx], dict) else {}

    @staticmethod
    def _id_key(ident: dict) -> str:
        for attr in ("identifier", "permId", "code", "techId"):
            if attr in ident:
                return str(ident[attr])
        return str(ident)

    def _visible_pats(self, session):
        user = self.store.users.get(session.user_id)
        return [p for p in self.store.pats.values() if (user is not None and user.admin) or p.owner == session.user_id]

    # Collections of searchable objects and how to resolve ids into them
    def _all(self, entity: str, session=None) -> list:
        s = self.store
        if entity == "space":
            return list(s.spaces.values())
        if entity == "project":
            return list(s.projects.values())
        if entity == "experiment":
            return list(s.experiments.values())
        if entity == "sample":
            return list(s.samples.values())
        if entity == "dataset":
            return list(s.datasets.values())
        if entity == "datasettype":
            return [t for (k, _), t in s.types.items() if k == "DATA_SET"]
        if entity == "sampletype":
            return [t for (k, _), t in s.types.items() if k == "SAMPLE"]
        if entity == "experimenttype":
            return [t for (k, _), t in s.types.items() if k == "EXPERIMENT"]
        if entity == "propertytype":
            return list(s.property_types.values())
        if entity == "pat":
            return self._visible_pats(session)
        if entity == "vocabulary":
            return list(s.vocabularies.values())
        if entity == "vocabularyterm":
            return [t for v in s.vocabularies.values() for t in v.terms]
        return []

    def _resolve(self, entity: str, ident: dict, session=None):
        s = self.store
        if not isinstance(ident, dict):
            ident = {"permId": str(ident)}
        perm = ident.get("permId")
        identifier = ident.get("identifier")
        code = ident.get("code")
        if entity == "space":
            return s.spaces.get(str(perm or code or "").upper())
        if entity == "project":
            if perm:
                return s.projects.get(perm)
            for p in s.projects.values():
                if identifier and p.identifier == identifier.upper():
                    return p
            return None
        if entity == "experiment":
            return s.experiment_by(perm, identifier)
        if entity == "sample":
            return s.sample_by(perm, identifier)
        if entity == "dataset":
            return s.datasets.get(perm or code or "")
        if entity in ("datasettype", "sampletype", "experimenttype"):
            kind = {"datasettype": "DATA_SET", "sampletype": "SAMPLE", "experimenttype": "EXPERIMENT"}[entity]
            return s.find_type(kind, perm or code or "")
        if entity == "propertytype":
            return s.property_types.get(str(perm or code or "").upper())
        if entity == "pat":
            pat = s.pats.get(perm or "")
            return pat if pat in self._visible_pats(session) else None
        if entity == "vocabulary":
            return s.vocabularies.get(str(perm or code or "").upper())
        if entity == "vocabularyterm":
            voc = s.vocabularies.get(str(ident.get("vocabularyCode") or "").upper())
            return next((t for t in voc.terms if t.code == str(code or "").upper()), None) if voc else None
        return None

    def _build(self, b: DtoBuilder, entity: str, obj, fo):
        return {
            "space": b.space,
            "project": b.project,
            "experiment": b.experiment,
            "sample": b.sample,
            "dataset": b.dataset,
            "datasettype": b.entity_type,
            "sampletype": b.entity_type,
            "experimenttype": b.entity_type,
            "propertytype": b.property_type,
            "pat": b.pat,
            "vocabulary": b.vocabulary,
            "vocabularyterm": b.vocabulary_term,
        }[entity](obj, fo)

    def _search(self, entity, params, base_url):
        session, _ = self._session(params)
        crit = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        fo = self._fo(params)
        objs = [o for o in self._all(entity, session) if matches(o, crit)]
        b = DtoBuilder(self.store, base_url)
        return search_result([self._build(b, entity, o, fo) for o in objs], fo)

    def _get(self, entity, params, base_url):
        session, _ = self._session(params)
        fo = self._fo(params)
        b = DtoBuilder(self.store, base_url)
        out = {}
        for ident in self._ids(params):
            obj = self._resolve(entity, ident, session)
            if obj is not None:
                out[self._id_key(ident) if isinstance(ident, dict) else str(ident)] = self._build(b, entity, obj, fo)
        return out

    # -------------------------------------------------------------- dispatch
    ENTITY_METHODS = {
        "Spaces": "space",
        "Projects": "project",
        "Experiments": "experiment",
        "Samples": "sample",
        "DataSets": "dataset",
        "DataSetTypes": "datasettype",
        "SampleTypes": "sampletype",
        "ExperimentTypes": "experimenttype",
        "PropertyTypes": "propertytype",
        "PersonalAccessTokens": "pat",
        "Vocabularies": "vocabulary",
        "VocabularyTerms": "vocabularyterm",
    }

    def call_as(self, method: str, params: list, base_url: str):
        m = re.fullmatch(r"(search|get)(\w+)", method)
        if m and m.group(2) in self.ENTITY_METHODS:
            entity = self.ENTITY_METHODS[m.group(2)]
            if m.group(1) == "search":
                return self._search(entity, params, base_url)
            return self._get(entity, params, base_url)
        handler = getattr(self, "as_" + method, None)
        if handler is None:
            raise MethodNotFound(method)
        return handler(params, base_url)

    def call_dss(self, method: str, params: list, base_url: str):
        handler = getattr(self, "dss_" + method, None)
        if handler is None:
            raise MethodNotFound(method)
        return handler(params, base_url)

    # -------------------------------------------------------------- AS methods
    def as_login(self, params, base_url):
        if len(params) < 2:
            return None
        return self.store.login(params[0], params[1])

    def as_loginAsAnonymousUser(self, params, base_url):
        return None

    def as_logout(self, params, base_url):
        self.store.logout(params[0] if params else None)
        return None

    def as_isSessionActive(self, params, base_url):
        return self.store.is_session_active(params[0] if params else None)

    def as_getSessionInformation(self, params, base_url):
        session, pat = self._session(params)
        info = DtoBuilder(self.store, base_url).session_information(session, pat)
        if session.user_id in self.store.reported_user_names:
            info["userName"] = self.store.reported_user_names[session.user_id]
        return info

    def _server_info(self, public=False):
        s = self.store
        info = {
            "api-version": s.api_version,
            "archiving-configured": "false",
            "authentication-service": "file-authentication-service",
            "authentication-service.switch-aai.label": None,
            "authentication-service.switch-aai.link": None,
            "create-continuous-sample-codes": "false",
            "enabled-technologies": "eln-lims, dropbox-monitor",
            "openbis-version": "20.10.7-standin",
            "openbis.support.email": None,
            "personal-access-tokens-enabled": "true",
            "personal-access-tokens-max-validity-period": str(s.pat_max_validity),
            "personal-access-tokens-validity-warning-period": str(s.pat_warning_period),
            "project-samples-enabled": "true",
        }
        if public:
            info = {
                k: v for k, v in info.items() if k.startswith("authentication-service") or k == "openbis.support.email"
            }
        return dict(sorted(info.items()))

    def as_getServerInformation(self, params, base_url):
        self._session(params)
        return self._server_info()

    def as_getServerPublicInformation(self, params, base_url):
        return self._server_info(public=True)

    def as_searchDataStores(self, params, base_url):
        self._session(params)
        b = DtoBuilder(self.store, base_url)
        return search_result([b.datastore()], self._fo(params))

    def as_getDataStores(self, params, base_url):  # not in openBIS V3, harmless
        raise MethodNotFound("getDataStores")

    def as_createPersonalAccessTokens(self, params, base_url):
        session, pat = self._session(params)
        if pat is not None:
            raise StandInFault("Personal access tokens cannot be used to manage personal access tokens.", USER_FAILURE)
        creations = params[1] if len(params) > 1 else []
        if isinstance(creations, dict):
            creations = [creations]
        out = []
        for c in creations or []:
            owner = None
            owner_id = c.get("ownerId")
            if isinstance(owner_id, dict) and owner_id.get("permId") not in (None, session.user_id):
                user = self.store.users.get(session.user_id)
                if not (user and user.admin):
                    raise StandInFault(
                        f"Access denied to object with PersonPermId = [{owner_id.get('permId')}].",
                        AUTHORIZATION_FAILURE,
                    )
                owner = owner_id.get("permId")
            p = self.store.create_pat(
                session, c.get("sessionName"), c.get("validFromDate"), c.get("validToDate"), owner
            )
            out.append({"@type": "as.dto.pat.id.PersonalAccessTokenPermId", "permId": p.hash})
        return out

    def as_deletePersonalAccessTokens(self, params, base_url):
        session, pat = self._session(params)
        if pat is not None:
            raise StandInFault("Personal access tokens cannot be used to manage personal access tokens.", USER_FAILURE)
        visible = self._visible_pats(session)
        for ident in self._ids(params):
            p = self.store.pats.get(ident.get("permId") if isinstance(ident, dict) else ident)
            if p is not None and p in visible:
                del self.store.pats[p.hash]
                self.store.pat_sessions.pop((p.owner, p.session_name), None)
        return None

    # -------------------------------------------------------------- DSS methods
    def dss_searchFiles(self, params, base_url):
        self._session(params)
        crit = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        datasets = [
            d
            for d in self.store.datasets.values()
            if all(
                matches(d, c) for c in crit.get("criteria") or [] if "DataSetSearchCriteria" in (c.get("@type") or "")
            )
        ]
        b = DtoBuilder(self.store, base_url)
        files = []
        for ds in datasets:
            files.extend(b.dataset_files(ds))
        return search_result(files, self._fo(params))

    def dss_createFastDownloadSession(self, params, base_url):
        session, _ = self._session(params)
        ids = self._ids(params)
        options = self._fo(params) or {
            "@type": "dss.dto.datasetfile.fastdownload.FastDownloadSessionOptions",
            "wishedNumberOfStreams": 4,
        }
        for ident in ids:
            ds_id = (ident.get("dataSetId") or {}).get("permId")
            ds = self.store.datasets.get(ds_id)
            if ds is None:
                raise StandInFault(f"Object with DataSetPermId = [{ds_id}] has not been found.", OBJECT_NOT_FOUND)
        return {
            "@type": "dss.dto.datasetfile.fastdownload.FastDownloadSession",
            "downloadUrl": base_url + "/datastore_server/file-transfer",
            "fileTransferUserSessionId": params[0],
            "files": ids,
            "options": options,
        }

    def dss_createUploadedDataSet(self, params, base_url):
        session, _ = self._session(params)
        c = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        type_code = (c.get("typeId") or {}).get("permId")
        experiment = sample = None
        if c.get("experimentId"):
            eid = c["experimentId"]
            experiment = self.store.experiment_by(eid.get("permId"), eid.get("identifier"))
            if experiment is None:
                raise StandInFault(
                    f"Object with {eid.get('@type', '').rsplit('.', 1)[-1]} = "
                    f"[{eid.get('identifier') or eid.get('permId')}] has not been found.",
                    OBJECT_NOT_FOUND,
                )
        if c.get("sampleId"):
            sid = c["sampleId"]
            sample = self.store.sample_by(sid.get("permId"), sid.get("identifier"))
            if sample is None:
                raise StandInFault(
                    f"Object with {sid.get('@type', '').rsplit('.', 1)[-1]} = "
                    f"[{sid.get('permId') or sid.get('identifier')}] has not been found.",
                    OBJECT_NOT_FOUND,
                )
        parents = []
        for pid in c.get("parentIds") or []:
            perm = pid.get("permId") if isinstance(pid, dict) else pid
            p = self.store.datasets.get(perm)
            if p is None:
                raise StandInFault(f"Object with DataSetPermId = [{perm}] has not been found.", OBJECT_NOT_FOUND)
            parents.append(p)
        upload_id = c.get("uploadId") or ""
        ws = self.store.workspaces.get(session.token, {})
        prefix = upload_id.strip("/") + "/"
        taken = [path for path in ws if upload_id and path.startswith(prefix)]
        files = {"original/" + path[len(prefix) :]: bytes(ws[path]) for path in taken}
        ds = self.store.create_uploaded_dataset(
            session, type_code, c.get("properties") or {}, experiment, sample, parents, files
        )
        for path in taken:
            ws.pop(path, None)
        return {"@type": "as.dto.dataset.id.DataSetPermId", "permId": ds.perm_id}


__all__ = ["Api", "MethodNotFound", "matches", "jackson"]
