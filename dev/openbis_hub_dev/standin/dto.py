"""Jackson-style DTOs as the openBIS V3 API writes them.

Builders return fresh dicts; a relation is only filled in when the request's fetch
options ask for it (otherwise ``null``, as openBIS does).  :func:`jackson` numbers the
objects (``@id``) and turns a second occurrence of the *same* dict into its integer id.
"""

from __future__ import annotations

from .store import (
    DataSet,
    EntityType,
    Experiment,
    PersonalAccessToken,
    Project,
    PropertyType,
    Sample,
    Space,
    Store,
    Vocabulary,
    VocabularyTerm,
)


def jackson(value):
    """Assign ``@id`` to every ``@type`` object; repeated objects become integer refs."""
    seen: dict[int, int] = {}
    counter = [0]

    def walk(v):
        if isinstance(v, dict):
            if "@type" in v:
                key = id(v)
                if key in seen:
                    return seen[key]
                counter[0] += 1
                seen[key] = counter[0]
                out = {"@type": v["@type"], "@id": counter[0]}
                for k, item in v.items():
                    if k in ("@type", "@id"):
                        continue
                    out[k] = walk(item)
                return out
            return {k: walk(item) for k, item in v.items()}
        if isinstance(v, list):
            return [walk(item) for item in v]
        return v

    return walk(value)


def fo_has(fo, key) -> bool:
    return isinstance(fo, dict) and fo.get(key) is not None


def _sub(fo, key):
    return fo.get(key) if isinstance(fo, dict) else None


def search_result(objects, fo) -> dict:
    total = len(objects)
    start = (fo or {}).get("from") or 0
    count = (fo or {}).get("count")
    objects = objects[start:] if count is None else objects[start : start + count]
    return {"@type": "as.dto.common.search.SearchResult", "objects": objects, "totalCount": total}


class DtoBuilder:
    """Builds DTOs for one response; ``base_url`` is the DataStore download URL."""

    def __init__(self, store: Store, base_url: str):
        self.store = store
        self.base_url = base_url
        self._datastore = None

    # ----------------------------------------------------------------- people
    def person(self, user_id, fo=None):
        if user_id is None:
            return None
        u = self.store.users.get(user_id)
        return {
            "@type": "as.dto.person.Person",
            "fetchOptions": None,
            "permId": {"@type": "as.dto.person.id.PersonPermId", "permId": user_id},
            "userId": user_id,
            "firstName": u.first_name if u else None,
            "lastName": u.last_name if u else None,
            "email": u.email if u else None,
            "registrationDate": u.registration_date if u else None,
            "active": True,
            "space": None,
            "registrator": None,
            "roleAssignments": None,
            "webAppSettings": None,
        }

    def _reg_mod(self, d: dict, user_id, fo, modifier=None):
        reg = self.person(user_id) if fo_has(fo, "registrator") else None
        d["registrator"] = reg
        mod_user = modifier or user_id
        if fo_has(fo, "modifier"):
            d["modifier"] = reg if (reg is not None and mod_user == user_id) else self.person(mod_user)
        else:
            d["modifier"] = None

    # ----------------------------------------------------------------- types
    def property_type(self, pt: PropertyType, fo=None):
        return {
            "@type": "as.dto.property.PropertyType",
            "fetchOptions": None,
            "permId": {"@type": "as.dto.property.id.PropertyTypePermId", "permId": pt.code},
            "code": pt.code,
            "label": pt.label,
            "description": pt.description,
            "managedInternally": pt.code.startswith("$"),
            "dataType": pt.data_type,
            "vocabulary": self.vocabulary(self.store.vocabularies[pt.vocabulary], fo["vocabulary"])
            if fo_has(fo, "vocabulary") and pt.vocabulary in self.store.vocabularies
            else None,
            "materialType": None,
            "sampleType": None,
            "schema": None,
            "transformation": None,
            "semanticAnnotations": None,
            "registrator": self.person("admin") if fo_has(fo, "registrator") else None,
            "registrationDate": 1700000000000,
            "metaData": {},
            "multiValue": False,
            "pattern": None,
            "patternType": None,
        }

    def vocabulary(self, voc: Vocabulary, fo=None):
        d = {
            "@type": "as.dto.vocabulary.Vocabulary",
            "fetchOptions": None,
            "permId": {"@type": "as.dto.vocabulary.id.VocabularyPermId", "permId": voc.code},
            "code": voc.code,
            "description": voc.description,
            "managedInternally": False,
            "internalNameSpace": False,
            "chosenFromList": True,
            "urlTemplate": None,
            "registrationDate": 1700000000000,
            "modificationDate": 1700000000000,
            "terms": [self.vocabulary_term(t, fo["terms"]) for t in voc.terms] if fo_has(fo, "terms") else None,
        }
        self._reg_mod(d, "admin", fo)
        return d

    def vocabulary_term(self, term: VocabularyTerm, fo=None):
        d = {
            "@type": "as.dto.vocabulary.VocabularyTerm",
            "fetchOptions": None,
            "permId": {
                "@type": "as.dto.vocabulary.id.VocabularyTermPermId",
                "code": term.code,
                "vocabularyCode": term.vocabulary.code if term.vocabulary else None,
            },
            "code": term.code,
            "label": term.label,
            "description": term.description,
            "ordinal": term.ordinal,
            "official": True,
            "managedInternally": False,
            "registrationDate": 1700000000000,
            "modificationDate": 1700000000000,
            "vocabulary": self.vocabulary(term.vocabulary, fo["vocabulary"])
            if fo_has(fo, "vocabulary") and term.vocabulary
            else None,
        }
        self._reg_mod(d, "admin", fo)
        return d

    def entity_type(self, et: EntityType, fo=None):
        kinds = {
            "DATA_SET": ("as.dto.dataset.DataSetType", "dataset"),
            "SAMPLE": ("as.dto.sample.SampleType", "sample"),
            "EXPERIMENT": ("as.dto.experiment.ExperimentType", "experiment"),
        }
        type_name, _ = kinds[et.kind]
        perm = {"@type": "as.dto.entitytype.id.EntityTypePermId", "permId": et.code, "entityKind": et.kind}
        d = {
            "@type": type_name,
            "fetchOptions": None,
            "permId": perm,
            "code": et.code,
            "description": et.description,
            "modificationDate": 1700000000000,
            "validationPlugin": None,
            "metaData": {},
            "semanticAnnotations": None,
        }
        if et.kind == "DATA_SET":
            d.update(
                {"kind": "PHYSICAL", "mainDataSetPattern": None, "mainDataSetPath": None, "disallowDeletion": False}
            )
        elif et.kind == "SAMPLE":
            d.update(
                {
                    "autoGeneratedCode": False,
                    "generatedCodePrefix": "S",
                    "listable": True,
                    "showContainer": False,
                    "showParents": True,
                    "showParentMetadata": False,
                    "subcodeUnique": False,
                }
            )
        if fo_has(fo, "propertyAssignments"):
            pa_fo = fo["propertyAssignments"]
            pas = []
            for ordinal, (code, mandatory) in enumerate(et.assignments, start=1):
                pt = self.store.property_types[code]
                pas.append(
                    {
                        "@type": "as.dto.property.PropertyAssignment",
                        "fetchOptions": None,
                        "permId": {
                            "@type": "as.dto.property.id.PropertyAssignmentPermId",
                            "entityTypeId": dict(perm),
                            "propertyTypeId": {"@type": "as.dto.property.id.PropertyTypePermId", "permId": code},
                        },
                        "section": None,
                        "ordinal": ordinal,
                        "mandatory": bool(mandatory or self.store.is_mandatory(et.code, code)),
                        "showInEditView": True,
                        "showRawValueInForms": False,
                        "semanticAnnotations": None,
                        "semanticAnnotationsInherited": False,
                        "entityType": None,
                        "propertyType": self.property_type(pt, _sub(pa_fo, "propertyType"))
                        if fo_has(pa_fo, "propertyType")
                        else None,
                        "plugin": None,
                        "registrator": None,
                        "registrationDate": 1700000000000,
                        "unique": False,
                    }
                )
            d["propertyAssignments"] = pas
        else:
            d["propertyAssignments"] = None
        return d

    # ----------------------------------------------------------------- data store
    def datastore(self, fo=None, shared=False):
        if shared and self._datastore is not None:
            return self._datastore
        d = {
            "@type": "as.dto.datastore.DataStore",
            "fetchOptions": None,
            "code": "DSS1",
            "downloadUrl": self.base_url,
            "remoteUrl": self.base_url,
            "registrationDate": 1700000000000,
            "modificationDate": 1700000000000,
        }
        if shared:
            self._datastore = d
        return d

    # ----------------------------------------------------------------- entities
    def space(self, sp: Space, fo=None):
        d = {
            "@type": "as.dto.space.Space",
            "fetchOptions": None,
            "permId": {"@type": "as.dto.space.id.SpacePermId", "permId": sp.code},
            "code": sp.code,
            "description": sp.description,
            "frozen": False,
            "frozenForProjects": False,
            "frozenForSamples": False,
            "registrationDate": sp.registration_date,
            "modificationDate": sp.registration_date,
            "projects": None,
            "samples": None,
        }
        self._reg_mod(d, sp.registrator, fo)
        if fo_has(fo, "projects"):
            d["projects"] = [self.project(p, fo["projects"]) for p in self.store.projects.values() if p.space is sp]
        return d

    def project(self, pr: Project, fo=None):
        d = {
            "@type": "as.dto.project.Project",
            "fetchOptions": None,
            "permId": {"@type": "as.dto.project.id.ProjectPermId", "permId": pr.perm_id},
            "identifier": {"@type": "as.dto.project.id.ProjectIdentifier", "identifier": pr.identifier},
            "code": pr.code,
            "description": pr.description,
            "frozen": False,
            "frozenForExperiments": False,
            "frozenForSamples": False,
            "registrationDate": pr.registration_date,
            "modificationDate": pr.registration_date,
            "space": self.space(pr.space, fo["space"]) if fo_has(fo, "space") else None,
            "experiments": None,
            "samples": None,
            "attachments": None,
            "leader": None,
            "history": None,
        }
        self._reg_mod(d, pr.registrator, fo)
        if fo_has(fo, "experiments"):
            d["experiments"] = [
                self.experiment(e, fo["experiments"]) for e in self.store.experiments.values() if e.project is pr
            ]
        if fo_has(fo, "attachments"):
            d["attachments"] = []
        return d

    def experiment(self, ex: Experiment, fo=None):
        d = {
            "@type": "as.dto.experiment.Experiment",
            "fetchOptions": None,
            "permId": {"@type": "as.dto.experiment.id.ExperimentPermId", "permId": ex.perm_id},
            "identifier": {"@type": "as.dto.experiment.id.ExperimentIdentifier", "identifier": ex.identifier},
            "code": ex.code,
            "frozen": False,
            "frozenForDataSets": False,
            "frozenForSamples": False,
            "registrationDate": ex.registration_date,
            "modificationDate": ex.registration_date,
            "type": self.entity_type(ex.type, fo["type"]) if fo_has(fo, "type") else None,
            "project": self.project(ex.project, fo["project"]) if fo_has(fo, "project") else None,
            "properties": dict(ex.properties) if fo_has(fo, "properties") else None,
            "tags": [] if fo_has(fo, "tags") else None,
            "dataSets": None,
            "samples": None,
            "attachments": [] if fo_has(fo, "attachments") else None,
            "history": None,
            "metaData": {},
        }
        self._reg_mod(d, ex.registrator, fo)
        if fo_has(fo, "dataSets"):
            d["dataSets"] = [
                self.dataset(x, fo["dataSets"]) for x in self.store.datasets.values() if x.experiment is ex
            ]
        if fo_has(fo, "samples"):
            d["samples"] = [self.sample(x, fo["samples"]) for x in self.store.samples.values() if x.experiment is ex]
        return d

    def sample(self, sa: Sample, fo=None):
        d = {
            "@type": "as.dto.sample.Sample",
            "fetchOptions": None,
            "permId": {"@type": "as.dto.sample.id.SamplePermId", "permId": sa.perm_id},
            "identifier": {"@type": "as.dto.sample.id.SampleIdentifier", "identifier": sa.identifier},
            "code": sa.code,
            "frozen": False,
            "frozenForComponents": False,
            "frozenForChildren": False,
            "frozenForParents": False,
            "frozenForDataSets": False,
            "registrationDate": sa.registration_date,
            "modificationDate": sa.registration_date,
            "type": self.entity_type(sa.type, fo["type"]) if fo_has(fo, "type") else None,
            "project": self.project(sa.project, fo["project"]) if fo_has(fo, "project") and sa.project else None,
            "space": self.space(sa.space, fo["space"]) if fo_has(fo, "space") else None,
            "experiment": self.experiment(sa.experiment, fo["experiment"])
            if fo_has(fo, "experiment") and sa.experiment
            else None,
            "properties": dict(sa.properties) if fo_has(fo, "properties") else None,
            "tags": [] if fo_has(fo, "tags") else None,
            "parents": [self.sample(p, fo["parents"]) for p in sa.parents] if fo_has(fo, "parents") else None,
            "children": [self.sample(c, fo["children"]) for c in sa.children] if fo_has(fo, "children") else None,
            "container": None,
            "components": [] if fo_has(fo, "components") else None,
            "dataSets": None,
            "attachments": [] if fo_has(fo, "attachments") else None,
            "history": None,
            "metaData": {},
        }
        self._reg_mod(d, sa.registrator, fo)
        if fo_has(fo, "dataSets"):
            d["dataSets"] = [self.dataset(x, fo["dataSets"]) for x in self.store.datasets.values() if x.sample is sa]
        return d

    def dataset(self, ds: DataSet, fo=None):
        d = {
            "@type": "as.dto.dataset.DataSet",
            "fetchOptions": None,
            "permId": {"@type": "as.dto.dataset.id.DataSetPermId", "permId": ds.perm_id},
            "code": ds.perm_id,
            "frozen": False,
            "frozenForChildren": False,
            "frozenForParents": False,
            "frozenForComponents": False,
            "frozenForContainers": False,
            "measured": not ds.uploaded,
            "postRegistered": True,
            "kind": "PHYSICAL",
            "dataProducer": None,
            "dataProductionDate": None,
            "registrationDate": ds.registration_date,
            "modificationDate": ds.registration_date,
            "accessDate": ds.registration_date,
            "type": self.entity_type(ds.type, fo["type"]) if fo_has(fo, "type") else None,
            "dataStore": self.datastore(fo["dataStore"]) if fo_has(fo, "dataStore") else None,
            "physicalData": None,
            "linkedData": None,
            "experiment": self.experiment(ds.experiment, fo["experiment"])
            if fo_has(fo, "experiment") and ds.experiment
            else None,
            "sample": self.sample(ds.sample, fo["sample"]) if fo_has(fo, "sample") and ds.sample else None,
            "properties": dict(ds.properties) if fo_has(fo, "properties") else None,
            "sampleProperties": None,
            "parents": [self.dataset(p, fo["parents"]) for p in ds.parents] if fo_has(fo, "parents") else None,
            "children": [self.dataset(c, fo["children"]) for c in ds.children] if fo_has(fo, "children") else None,
            "containers": [] if fo_has(fo, "containers") else None,
            "components": [] if fo_has(fo, "components") else None,
            "tags": [] if fo_has(fo, "tags") else None,
            "history": None,
            "metaData": {},
        }
        if fo_has(fo, "physicalData"):
            d["physicalData"] = {
                "@type": "as.dto.dataset.PhysicalData",
                "fetchOptions": None,
                "shareId": "1",
                "location": self._location(ds.perm_id),
                "size": ds.size(),
                "complete": "YES",
                "status": "AVAILABLE",
                "presentInArchive": False,
                "storageConfirmation": True,
                "speedHint": -50,
                "archivingRequested": False,
                "h5Folders": True,
                "h5arFolders": False,
                "fileFormatType": None,
                "locatorType": None,
                "storageFormat": None,
            }
        self._reg_mod(d, ds.registrator, fo)
        return d

    def _location(self, perm_id: str) -> str:
        import hashlib

        h = hashlib.md5(perm_id.encode()).hexdigest()
        return f"{self.store.dss_uuid}/{h[0:2]}/{h[2:4]}/{h[4:6]}/{perm_id}"

    def pat(self, pat: PersonalAccessToken, fo=None):
        d = {
            "@type": "as.dto.pat.PersonalAccessToken",
            "fetchOptions": None,
            "permId": {"@type": "as.dto.pat.id.PersonalAccessTokenPermId", "permId": pat.hash},
            "hash": pat.hash,
            "sessionName": pat.session_name,
            "validFromDate": pat.valid_from,
            "validToDate": pat.valid_to,
            "owner": self.person(pat.owner) if fo_has(fo, "owner") else None,
            "registrationDate": pat.registration_date,
            "modificationDate": pat.registration_date,
            "accessDate": pat.access_date,
        }
        self._reg_mod(d, pat.registrator, fo)
        return d

    def session_information(self, session, pat):
        person = self.person(session.user_id)
        return {
            "@type": "as.dto.session.SessionInformation",
            "fetchOptions": {
                "@type": "as.dto.session.fetchoptions.SessionInformationFetchOptions",
                "person": None,
                "creatorPerson": None,
            },
            "sessionToken": None if pat is not None else session.token,
            "userName": session.user_id,
            "homeGroupCode": None,
            "personalAccessTokenSession": pat is not None,
            "personalAccessTokenSessionName": pat.session_name if pat is not None else None,
            "person": person,
            "creatorPerson": person,
        }

    def dataset_files(self, ds: DataSet):
        """``DataSetFile`` objects: the ``dataSetPermId`` is the same object as the file
        id's ``dataSetId`` (an integer reference on the wire), the DataStore is shared."""
        import zlib

        out = []
        store = self.datastore(shared=True)
        entries = [(p, True, b"") for p in ds.directories()] + [
            (p, False, data) for p, data in sorted(ds.files.items())
        ]
        entries.sort(key=lambda e: e[0])
        for path, is_dir, data in entries:
            ds_id = {"@type": "as.dto.dataset.id.DataSetPermId", "permId": ds.perm_id}
            crc = zlib.crc32(data) & 0xFFFFFFFF
            if crc >= 2**31:
                crc -= 2**32
            out.append(
                {
                    "@type": "dss.dto.datasetfile.DataSetFile",
                    "permId": {
                        "@type": "dss.dto.datasetfile.id.DataSetFilePermId",
                        "dataSetId": ds_id,
                        "filePath": path,
                    },
                    "dataSetPermId": ds_id,
                    "dataStore": store,
                    "path": path,
                    "directory": is_dir,
                    "fileLength": 0 if is_dir else len(data),
                    "checksumCRC32": 0 if is_dir else crc,
                    "checksum": None,
                    "checksumType": None,
                }
            )
        return out
