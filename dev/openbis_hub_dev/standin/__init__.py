"""openBIS stand-in: a small tornado server that speaks the openBIS V3 wire protocol
closely enough for unmodified pybis 1.37.5 (login, tokens, PATs, entity look-ups,
fast/classic download, session-workspace upload + createUploadedDataSet).

It is a test double for the openbis-hub test-suite and for ``openbis-hub demo``; it is
not openBIS.  Endpoints under ``/standin/`` are test controls and do not exist in openBIS.

Programmatic use::

    from openbis_hub_dev.standin import StandIn
    s = StandIn(state_dir=tmp)        # https + self-signed CA (s.ca_file) by default
    url = await s.start()
    ...
    await s.stop()

CLI: ``python -m openbis_hub_dev.standin --port 0 --state-dir DIR [--http]``.
"""

from .app import AS_PATH, DSS_PATH, StandIn, make_app, serve
from .store import (
    DEMO_BASE,
    DEMO_COLLECTION_PERMID,
    DEMO_DATASET1_PERMID,
    DEMO_DATASET2_PERMID,
    DEMO_OBJECT_PERMID,
    DEMO_PROJECT_PERMID,
    DEMO_USERS,
    StandInFault,
    Store,
)

DEMO_SPACE = "DEMO"
DEMO_PROJECT = "/DEMO/ANALYSIS"
DEMO_COLLECTION = "/DEMO/ANALYSIS/MEASUREMENTS"
DEMO_OBJECT = "/DEMO/ANALYSIS/STEP1"

__all__ = [
    "AS_PATH",
    "DSS_PATH",
    "StandIn",
    "Store",
    "StandInFault",
    "make_app",
    "serve",
    "DEMO_USERS",
    "DEMO_BASE",
    "DEMO_SPACE",
    "DEMO_PROJECT",
    "DEMO_COLLECTION",
    "DEMO_OBJECT",
    "DEMO_PROJECT_PERMID",
    "DEMO_COLLECTION_PERMID",
    "DEMO_OBJECT_PERMID",
    "DEMO_DATASET1_PERMID",
    "DEMO_DATASET2_PERMID",
]
