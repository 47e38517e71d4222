"""In-memory data model of the openBIS stand-in: users, sessions, personal access
tokens, entities (spaces, projects, collections, objects, datasets) and their files.

Everything here is plain Python; the wire format (Jackson-style DTOs) is produced by
:mod:`openbis_hub_dev.standin.dto`.  Not part of openBIS: a test double that imitates it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

log = logging.getLogger("openbis_hub_dev.standin")

INVALID_SESSION = "ch.systemsx.cisd.common.exceptions.InvalidSessionException"
USER_FAILURE = "ch.systemsx.cisd.common.exceptions.UserFailureException"
OBJECT_NOT_FOUND = "ch.ethz.sis.openbis.generic.asapi.v3.exceptions.ObjectNotFoundException"
AUTHORIZATION_FAILURE = "ch.systemsx.cisd.common.exceptions.AuthorizationFailureException"

DEMO_USERS = {
    "admin": ("admin-pw", "Admin", "Istrator", "admin@example.org", True),
    "alice": ("alice-pw", "Alice", "Anderson", "alice@example.org", False),
    "bob": ("bob-pw", "Bob", "Brown", "bob@example.org", False),
    "Jane.Doe": ("jane-pw", "Jane", "Doe", "jane.doe@example.org", False),
}

# demo permIds (openBIS form yyyyMMddHHmmssSSS-N)
DEMO_BASE = "20261123093000000"
DEMO_PROJECT_PERMID = f"{DEMO_BASE}-1"
DEMO_COLLECTION_PERMID = f"{DEMO_BASE}-2"
DEMO_OBJECT_PERMID = f"{DEMO_BASE}-3"
DEMO_DATASET1_PERMID = f"{DEMO_BASE}-4"
DEMO_DATASET2_PERMID = f"{DEMO_BASE}-5"

DEMO_CSV = b"time_s,temperature_c,pressure_kpa\n0,21.3,101.2\n1,21.9,101.3\n2,22.6,101.1\n3,23.4,101.4\n4,24.1,101.2\n"
DEMO_TXT = b"Experimental step 1: calibration run.\nSensor: PT100, sampling 1 Hz.\nOperator: alice\n"

DATASTORE_CODE = "DSS1"


class StandInFault(Exception):
    """An error as openBIS would report it (JSON-RPC error with code 0, HTTP 200)."""

    def __init__(self, message: str, type_name: str = USER_FAILURE):
        super().__init__(message)
        self.message = message
        self.type_name = type_name


def now_ms() -> int:
    return int(time.time() * 1000)


def _ts15(t: float | None = None) -> str:
    """yyMMddHHmmssSSS in server local time (TokenGenerator)."""
    t = time.time() if t is None else t
    dt = datetime.fromtimestamp(t)
    return dt.strftime("%y%m%d%H%M%S") + f"{dt.microsecond // 1000:03d}"


def new_session_token(user_id: str) -> str:
    return f"{user_id}-{_ts15()}x{secrets.token_hex(16).upper()}"


def new_pat_hash(user_id: str) -> str:
    return "$pat-" + new_session_token(user_id)


@dataclass
class User:
    user_id: str
    password: str
    first_name: str
    last_name: str
    email: str
    admin: bool = False
    registration_date: int = field(default_factory=now_ms)


@dataclass
class Session:
    token: str
    user_id: str
    created: float
    last_access: float
    pat_session_name: str | None = None  # set for the internal session behind a PAT
    expired: bool = False


@dataclass
class PersonalAccessToken:
    hash: str
    owner: str
    registrator: str
    session_name: str
    valid_from: int  # ms
    valid_to: int  # ms
    registration_date: int
    access_date: int | None = None


@dataclass
class PropertyType:
    code: str
    label: str
    description: str
    data_type: str
    vocabulary: str | None = None  # code of the vocabulary of a CONTROLLEDVOCABULARY property


@dataclass
class VocabularyTerm:
    code: str
    label: str
    description: str
    ordinal: int
    vocabulary: Vocabulary | None = None


@dataclass
class Vocabulary:
    code: str
    description: str
    terms: list  # of VocabularyTerm

    @property
    def perm_id(self):
        return self.code


@dataclass
class EntityType:
    kind: str  # DATA_SET, SAMPLE, EXPERIMENT
    code: str
    description: str
    assignments: list  # list of (property code, mandatory)


@dataclass
class Space:
    code: str
    description: str
    registrator: str
    registration_date: int

    @property
    def perm_id(self):
        return self.code

    @property
    def identifier(self):
        return "/" + self.code


@dataclass
class Project:
    perm_id: str
    code: str
    space: Space
    description: str
    registrator: str
    registration_date: int

    @property
    def identifier(self):
        return f"/{self.space.code}/{self.code}"


@dataclass
class Experiment:
    perm_id: str
    code: str
    type: EntityType
    project: Project
    properties: dict
    registrator: str
    registration_date: int

    @property
    def identifier(self):
        return f"{self.project.identifier}/{self.code}"

    @property
    def space(self):
        return self.project.space


@dataclass
class Sample:
    perm_id: str
    code: str
    type: EntityType
    space: Space
    project: Project | None
    experiment: Experiment | None
    properties: dict
    registrator: str
    registration_date: int
    parents: list = field(default_factory=list)
    children: list = field(default_factory=list)

    @property
    def identifier(self):
        if self.project is not None:
            return f"{self.project.identifier}/{self.code}"
        return f"/{self.space.code}/{self.code}"


@dataclass
class DataSet:
    perm_id: str
    type: EntityType
    experiment: Experiment | None
    sample: Sample | None
    properties: dict
    registrator: str
    registration_date: int
    files: dict  # path inside dataset ("original/x.csv") -> bytes
    parents: list = field(default_factory=list)
    children: list = field(default_factory=list)
    uploaded: bool = False

    @property
    def code(self):
        return self.perm_id

    @property
    def space(self):
        if self.sample is not None:
            return self.sample.space
        return self.experiment.space if self.experiment else None

    @property
    def project(self):
        if self.experiment is not None:
            return self.experiment.project
        return self.sample.project if self.sample else None

    def directories(self) -> list[str]:
        dirs = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return sorted(dirs)

    def size(self) -> int:
        return sum(len(b) for b in self.files.values())


class Store:
    """All state of one stand-in instance.  Thread-safe enough for the single tornado
    IO loop it lives in (a lock guards the counters touched from tests)."""

    def __init__(
        self,
        session_timeout: float = 3600.0,
        state_dir: str | os.PathLike | None = None,
        api_version: str = "3.7",
        mandatory: dict | None = None,
        pat_max_validity: int = 2592000,
        pat_warning_period: int = 432000,
        demo: bool = True,
    ):
        self.session_timeout = float(session_timeout)
        self.state_dir = Path(state_dir) if state_dir else None
        self.api_version = api_version
        self.pat_max_validity = int(pat_max_validity)
        self.pat_warning_period = int(pat_warning_period)
        self.delay = 0.0
        # test control: getSessionInformation reports this userName for a real user
        # (a misbehaving or hostile openBIS, for the hub's checks of its answers)
        self.reported_user_names: dict[str, object] = {}
        self.issued: list[str] = []  # every session token and PAT handed out (for the tests' log scan)
        self._lock = threading.Lock()
        self._counter = 5  # permId sequence (demo uses 1..5)
        self.stats: dict[str, int] = {}
        self.http_stats: dict[str, int] = {}
        self.users: dict[str, User] = {}
        self.sessions: dict[str, Session] = {}
        self.pats: dict[str, PersonalAccessToken] = {}
        self.pat_sessions: dict[tuple, Session] = {}
        self.workspaces: dict[str, dict[str, bytearray]] = {}  # session token -> files
        self.property_types: dict[str, PropertyType] = {}
        self.vocabularies: dict[str, Vocabulary] = {}
        self.types: dict[tuple, EntityType] = {}  # (kind, code) -> type
        self.spaces: dict[str, Space] = {}
        self.projects: dict[str, Project] = {}  # permId
        self.experiments: dict[str, Experiment] = {}
        self.samples: dict[str, Sample] = {}
        self.datasets: dict[str, DataSet] = {}
        self.mandatory = {k.upper(): {p.upper() for p in v} for k, v in (mandatory or {}).items()}
        self.dss_uuid = "A1B2C3D4-0000-4000-8000-0123456789AB"
        for uid, (pw, fn, ln, mail, admin) in DEMO_USERS.items():
            self.add_user(uid, pw, fn, ln, mail, admin)
        self._setup_types()
        if demo:
            self._setup_demo()
        if self.state_dir is not None:
            self._load_persisted()

    # ------------------------------------------------------------------ setup
    def add_user(self, user_id, password, first_name="", last_name="", email="", admin=False):
        self.users[user_id] = User(user_id, password, first_name, last_name, email, admin)

    def _setup_types(self):
        for pt in [
            PropertyType("$NAME", "Name", "Name", "VARCHAR"),
            PropertyType("NOTES", "Notes", "Notes", "MULTILINE_VARCHAR"),
            PropertyType("$HISTORY_ID", "History ID", "History ID", "VARCHAR"),
            PropertyType("DESCRIPTION", "Description", "Description", "MULTILINE_VARCHAR"),
            PropertyType(
                "INSTRUMENT", "Instrument", "Instrument that took the data", "CONTROLLEDVOCABULARY", "INSTRUMENT"
            ),
            PropertyType("TEMPERATURE", "Temperature (°C)", "Temperature of the run", "REAL"),
            PropertyType("RUN_NUMBER", "Run number", "Number of the run", "INTEGER"),
        ]:
            self.property_types[pt.code] = pt
        instrument = Vocabulary("INSTRUMENT", "Instruments", [])
        for ordinal, (code, label) in enumerate([("PT100", "PT100 sensor"), ("THERMOCOUPLE", "Thermocouple")], 1):
            instrument.terms.append(VocabularyTerm(code, label, label, ordinal, instrument))
        self.vocabularies[instrument.code] = instrument
        ds_props = [("$NAME", False), ("NOTES", False), ("$HISTORY_ID", False)]
        for code, desc in [
            ("RAW_DATA", "Raw data"),
            ("ANALYSIS_NOTEBOOK", "Jupyter notebook and its results"),
        ]:
            self.types[("DATA_SET", code)] = EntityType("DATA_SET", code, desc, list(ds_props))
        # a type with a mandatory vocabulary property and typed ones, for forms built from assignments
        self.types[("DATA_SET", "PROCESSED_DATA")] = EntityType(
            "DATA_SET",
            "PROCESSED_DATA",
            "Processed data",
            [*ds_props, ("INSTRUMENT", True), ("TEMPERATURE", False), ("RUN_NUMBER", False)],
        )
        self.types[("EXPERIMENT", "COLLECTION")] = EntityType(
            "EXPERIMENT", "COLLECTION", "Collection", [("$NAME", False)]
        )
        self.types[("SAMPLE", "EXPERIMENTAL_STEP")] = EntityType(
            "SAMPLE",
            "EXPERIMENTAL_STEP",
            "Experimental step",
            [("$NAME", False), ("NOTES", False)],
        )

    def is_mandatory(self, type_code: str, prop: str) -> bool:
        return prop.upper() in self.mandatory.get(type_code.upper(), set())

    def _setup_demo(self):
        t0 = int(datetime(2026, 11, 23, 9, 30).timestamp() * 1000)
        space = Space("DEMO", "Demo space of the openBIS stand-in", "admin", t0)
        self.spaces[space.code] = space
        project = Project(DEMO_PROJECT_PERMID, "ANALYSIS", space, "Analysis project", "admin", t0)
        self.projects[project.perm_id] = project
        coll = Experiment(
            DEMO_COLLECTION_PERMID,
            "MEASUREMENTS",
            self.types[("EXPERIMENT", "COLLECTION")],
            project,
            {"$NAME": "Measurements"},
            "admin",
            t0,
        )
        self.experiments[coll.perm_id] = coll
        step = Sample(
            DEMO_OBJECT_PERMID,
            "STEP1",
            self.types[("SAMPLE", "EXPERIMENTAL_STEP")],
            space,
            project,
            coll,
            {"$NAME": "Step 1", "NOTES": "Calibration run"},
            "admin",
            t0,
        )
        self.samples[step.perm_id] = step
        ds1 = DataSet(
            DEMO_DATASET1_PERMID,
            self.types[("DATA_SET", "RAW_DATA")],
            coll,
            None,
            {"$NAME": "Temperature measurements", "NOTES": "first run"},
            "admin",
            t0,
            {"original/measurements.csv": DEMO_CSV},
        )
        ds2 = DataSet(
            DEMO_DATASET2_PERMID,
            self.types[("DATA_SET", "RAW_DATA")],
            coll,
            step,
            {"$NAME": "Step 1 notes"},
            "admin",
            t0 + 1000,
            {"original/notes.txt": DEMO_TXT},
        )
        self.datasets[ds1.perm_id] = ds1
        self.datasets[ds2.perm_id] = ds2

    # ------------------------------------------------------------- counters
    def count(self, method: str):
        with self._lock:
            self.stats[method] = self.stats.get(method, 0) + 1

    def count_http(self, what: str):
        with self._lock:
            self.http_stats[what] = self.http_stats.get(what, 0) + 1

    def reset_stats(self):
        with self._lock:
            self.stats.clear()
            self.http_stats.clear()

    def stats_json(self) -> dict:
        with self._lock:
            return {
                "total": sum(self.stats.values()),
                "methods": dict(self.stats),
                "http": dict(self.http_stats),
            }

    def new_perm_id(self) -> str:
        with self._lock:
            self._counter += 1
            n = self._counter
        dt = datetime.now()
        return dt.strftime("%Y%m%d%H%M%S") + f"{dt.microsecond // 1000:03d}-{n}"

    # ------------------------------------------------------------- sessions
    def login(self, user_id, password):
        user = self.users.get(user_id) if isinstance(user_id, str) else None
        if user is None or not isinstance(password, str) or password != user.password:
            return None
        token = new_session_token(user.user_id)
        t = time.time()
        self.sessions[token] = Session(token, user.user_id, t, t)
        self.issued.append(token)
        return token

    def _session_expired(self, s: Session) -> bool:
        if s.expired:
            return True
        if s.pat_session_name is not None:
            return False
        return time.time() - s.last_access > self.session_timeout

    def _pat_state(self, pat: PersonalAccessToken) -> str:
        n = now_ms()
        if n < pat.valid_from:
            return "not-yet"
        if n > pat.valid_to:
            return "expired"
        return "ok"

    def pat_session(self, pat: PersonalAccessToken) -> Session:
        key = (pat.owner, pat.session_name)
        s = self.pat_sessions.get(key)
        if s is None:
            token = new_session_token(pat.owner)
            t = time.time()
            s = Session(token, pat.owner, t, t, pat_session_name=pat.session_name)
            self.pat_sessions[key] = s
        return s

    def is_session_active(self, token) -> bool:
        if not isinstance(token, str) or not token:
            return False
        if token.startswith("$pat-"):
            pat = self.pats.get(token)
            return pat is not None and self._pat_state(pat) == "ok"
        s = self.sessions.get(token)
        return s is not None and not self._session_expired(s)

    def get_session(self, token) -> tuple[Session, PersonalAccessToken | None]:
        """Resolve a token (session or PAT), touching it; raise openBIS' errors."""
        if token is None or (isinstance(token, str) and not token.strip()):
            raise StandInFault("No 'sessionToken' specified.", USER_FAILURE)
        if not isinstance(token, str):
            raise StandInFault(f"Session token '{token}' is invalid: user is not logged in.", INVALID_SESSION)
        if token.startswith("$pat-"):
            pat = self.pats.get(token)
            if pat is not None:
                state = self._pat_state(pat)
                if state == "not-yet":
                    raise StandInFault("Personal access token is not yet valid.", INVALID_SESSION)
                if state == "expired":
                    raise StandInFault("Personal access token is no longer valid.", INVALID_SESSION)
                s = self.pat_session(pat)
                pat.access_date = now_ms()
                s.last_access = time.time()
                return s, pat
        s = self.sessions.get(token)
        if s is None:
            raise StandInFault(f"Session token '{token}' is invalid: user is not logged in.", INVALID_SESSION)
        if self._session_expired(s):
            self.sessions.pop(token, None)
            self.workspaces.pop(token, None)
            raise StandInFault("Session no longer available. Please login again.", INVALID_SESSION)
        s.last_access = time.time()
        return s, None

    def logout(self, token):
        if isinstance(token, str) and not token.startswith("$pat-"):
            self.sessions.pop(token, None)
            self.workspaces.pop(token, None)

    def expire_user(self, user_id: str, pats: bool = False) -> int:
        n = 0
        for s in list(self.sessions.values()):
            if s.user_id == user_id and not s.expired:
                s.expired = True
                n += 1
        if pats:
            for pat in self.pats.values():
                if pat.owner == user_id and pat.valid_to > now_ms():
                    pat.valid_to = now_ms() - 1
                    n += 1
        return n

    def create_pat(self, session: Session, session_name, valid_from, valid_to, owner=None) -> PersonalAccessToken:
        owner = owner or session.user_id
        if not session_name:
            raise StandInFault("Session name cannot be empty.")
        n = now_ms()
        valid_from = int(valid_from) if valid_from is not None else n
        valid_to = int(valid_to) if valid_to is not None else valid_from + self.pat_max_validity * 1000
        if valid_to < valid_from:
            raise StandInFault("Valid to date cannot be earlier than valid from date.")
        if valid_to - valid_from > self.pat_max_validity * 1000 + 60_000:
            # real openBIS silently cuts the validity to the configured maximum
            valid_to = valid_from + self.pat_max_validity * 1000
        pat = PersonalAccessToken(new_pat_hash(owner), owner, session.user_id, session_name, valid_from, valid_to, n)
        self.pats[pat.hash] = pat
        self.issued.append(pat.hash)
        return pat

    def workspace_for(self, token) -> dict:
        s, _ = self.get_session(token)
        return self.workspaces.setdefault(s.token, {})

    # ------------------------------------------------------------- lookups
    def find_type(self, kind: str, code: str) -> EntityType | None:
        return self.types.get((kind, (code or "").upper()))

    def experiment_by(self, perm_id=None, identifier=None) -> Experiment | None:
        if perm_id:
            return self.experiments.get(perm_id)
        if identifier:
            ident = identifier.upper()
            for e in self.experiments.values():
                if e.identifier == ident:
                    return e
        return None

    def sample_by(self, perm_id=None, identifier=None) -> Sample | None:
        if perm_id:
            return self.samples.get(perm_id)
        if identifier:
            ident = identifier.upper()
            for s in self.samples.values():
                if s.identifier == ident or f"/{s.space.code}/{s.code}" == ident:
                    return s
        return None

    # ------------------------------------------------------------- datasets
    def create_uploaded_dataset(
        self,
        session: Session,
        type_code,
        props: dict,
        experiment: Experiment | None,
        sample: Sample | None,
        parents: list,
        files: dict,
    ) -> DataSet:
        dtype = self.find_type("DATA_SET", type_code)
        if dtype is None:
            raise StandInFault(f"Object with EntityTypePermId = [{type_code}] has not been found.", OBJECT_NOT_FOUND)
        assigned = {code for code, _ in dtype.assignments}
        clean = {}
        for key, value in (props or {}).items():
            code = key.upper()
            if code not in assigned:
                if code not in self.property_types:
                    raise StandInFault(f"Property type with code '{code}' does not exist!")
                raise StandInFault(f"Property type '{code}' is not assigned to data set type '{dtype.code}'.")
            if value is None or value == "":
                continue
            clean[code] = self._checked_value(
                self.property_types[code],
                value
                if isinstance(value, str)
                else json.dumps(value)
                if isinstance(value, (dict, list))
                else str(value),
            )
        for code, mandatory in dtype.assignments:
            if (mandatory or self.is_mandatory(dtype.code, code)) and code not in clean:
                raise StandInFault(f"Value of mandatory property '{code}' not specified.")
        if sample is not None and experiment is None:
            experiment = sample.experiment
        if experiment is None and sample is None:
            raise StandInFault("Data set can not be registered because it is not connected to an experiment or sample.")
        if not files:
            raise StandInFault("Upload folder is empty or does not exist.")
        ds = DataSet(
            self.new_perm_id(),
            dtype,
            experiment,
            sample,
            clean,
            session.user_id,
            now_ms(),
            dict(files),
            parents=list(parents),
            uploaded=True,
        )
        for p in parents:
            p.children.append(ds)
        self.datasets[ds.perm_id] = ds
        self._persist(ds)
        return ds

    def _checked_value(self, pt: PropertyType, value: str) -> str:
        """A property value as openBIS checks it (its messages), normalised as openBIS stores it."""
        if pt.data_type == "CONTROLLEDVOCABULARY":
            vocabulary = self.vocabularies.get(pt.vocabulary or "")
            if vocabulary is None or value.upper() not in {t.code for t in vocabulary.terms}:
                raise StandInFault(
                    f"Vocabulary value '{value}' of property '{pt.code}' is not valid. "
                    f"It must exist in '{pt.vocabulary}' controlled vocabulary."
                )
            return value.upper()
        if pt.data_type == "INTEGER":
            try:
                int(value)
            except ValueError:
                raise StandInFault(f"Integer value '{value}' has improper format.") from None
        if pt.data_type == "REAL":
            try:
                float(value)
            except ValueError:
                raise StandInFault(f"Double value '{value}' has improper format.") from None
        return value

    # ------------------------------------------------------------- persistence
    def _persist(self, ds: DataSet):
        if self.state_dir is None:
            return
        try:
            base = self.state_dir / "store" / ds.perm_id
            for path, data in ds.files.items():
                target = base / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            meta = {
                "permId": ds.perm_id,
                "type": ds.type.code,
                "experiment": ds.experiment.perm_id if ds.experiment else None,
                "sample": ds.sample.perm_id if ds.sample else None,
                "properties": ds.properties,
                "registrator": ds.registrator,
                "registrationDate": ds.registration_date,
                "parents": [p.perm_id for p in ds.parents],
                "files": sorted(ds.files),
            }
            (base / "dataset.json").write_text(json.dumps(meta, indent=1))
        except OSError:
            log.exception("could not persist dataset %s", ds.perm_id)

    def _load_persisted(self):
        root = self.state_dir / "store"
        if not root.is_dir():
            return
        metas = []
        for meta_file in root.glob("*/dataset.json"):
            try:
                metas.append(json.loads(meta_file.read_text()))
            except (OSError, ValueError):
                continue
        metas.sort(key=lambda m: m.get("registrationDate", 0))
        for m in metas:
            try:
                base = root / m["permId"]
                files = {p: (base / p).read_bytes() for p in m["files"]}
                ds = DataSet(
                    m["permId"],
                    self.types[("DATA_SET", m["type"])],
                    self.experiments.get(m["experiment"]) if m["experiment"] else None,
                    self.samples.get(m["sample"]) if m["sample"] else None,
                    m["properties"],
                    m["registrator"],
                    m["registrationDate"],
                    files,
                    parents=[self.datasets[p] for p in m["parents"] if p in self.datasets],
                    uploaded=True,
                )
            except (OSError, KeyError, ValueError):
                log.warning("skipping unreadable persisted dataset in %s", m.get("permId"))
                continue
            for p in ds.parents:
                p.children.append(ds)
            self.datasets[ds.perm_id] = ds
            try:
                self._counter = max(self._counter, int(ds.perm_id.rsplit("-", 1)[1]))
            except ValueError:
                pass

    def datasets_json(self) -> list[dict]:
        out = []
        for ds in self.datasets.values():
            out.append(
                {
                    "permId": ds.perm_id,
                    "type": ds.type.code,
                    "experiment": ds.experiment.identifier if ds.experiment else None,
                    "sample": ds.sample.identifier if ds.sample else None,
                    "owner": (
                        ds.sample.identifier if ds.sample else ds.experiment.identifier if ds.experiment else None
                    ),
                    "registrator": ds.registrator,
                    "registrationDate": ds.registration_date,
                    "parents": [p.perm_id for p in ds.parents],
                    "children": [c.perm_id for c in ds.children],
                    "properties": dict(ds.properties),
                    "files": sorted(ds.files),
                }
            )
        return out


def new_upload_id() -> str:
    return str(uuid.uuid4())
