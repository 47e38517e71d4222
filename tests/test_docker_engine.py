"""The Docker engine restarted under the compose deployment: the hub comes back, volumes stay, the next click works.

Restarting the engine stops every container on it, so this runs only on an
engine that is this project's own: started by ``.ci/docker-setup.sh`` (its
pid in ``/tmp/openbis-hub-dockerd.pid``) and with
``OPENBIS_HUB_DOCKER_ENGINE_RESTART=1`` (``.ci/run`` sets both).  Elsewhere
it is skipped with that reason.  It restarts the engine the way the setup
script starts it, so the tests after it find the engine as before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from docker_stack import ROOT, Stack, docker, engine, login, user_container  # noqa: F401

PREFIX = "openbis-hub-engine"
PID_FILE = Path("/tmp/openbis-hub-dockerd.pid")

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


class EngineStack(Stack):
    prefix = PREFIX


def our_engine_pid() -> int:
    """The pid of the dockerd that .ci/docker-setup.sh started, or skip: another engine is not ours to restart."""
    if os.environ.get("OPENBIS_HUB_DOCKER_ENGINE_RESTART") != "1":
        pytest.skip("restarts the Docker engine: set OPENBIS_HUB_DOCKER_ENGINE_RESTART=1 where that is allowed")
    try:
        pid = int(PID_FILE.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except (OSError, ValueError):
        pytest.skip(f"the engine was not started by .ci/docker-setup.sh (no live pid in {PID_FILE})")
    if not cmdline.endswith(b"dockerd"):
        pytest.skip(f"{PID_FILE} does not name a dockerd")
    return pid


def restart_engine(pid: int) -> float:
    """Stop dockerd as a host shutdown would (SIGTERM), start it as the setup script does; seconds it took."""
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 120
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.5)
    setup = subprocess.run(
        [str(ROOT / ".ci" / "docker-setup.sh")],
        env={**os.environ, "SKIP_BUILD": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert setup.returncode == 0, setup.stderr[-2000:]
    return time.monotonic() - started


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory):
    pid = our_engine_pid()
    s = EngineStack(engine, tmp_path_factory.mktemp("compose"))
    s.down()
    try:
        s.up()
        s.engine_pid = pid
        yield s
    finally:
        s.cleanup()


def test_the_engine_restarted_the_hub_comes_back_the_volume_stays_and_the_next_click_works(stack):
    token = stack.token("alice", "alice-pw")
    stack.eln_create(token, "engine", "before.ipynb", "x = 1")
    assert user_container("alice", PREFIX)["State"]["Running"]

    took = restart_engine(stack.engine_pid)
    restarted = time.monotonic()
    # the hub's container has `restart: unless-stopped`: the engine starts it again by itself
    stack.wait_ready(timeout=180)
    hub_back = time.monotonic() - restarted
    # the users' containers are made with auto-remove: the engine's stop removed them (the volumes stay),
    # and the restarted hub finds the server gone
    assert user_container("alice", PREFIX) is None
    deadline = time.monotonic() + 120
    with login(stack, token, "/hub/home") as (browser, _):
        while True:
            model = browser.get(f"{stack.url}/hub/api/users/alice")
            if model.status_code == 200 and not model.json().get("servers"):
                break
            assert time.monotonic() < deadline, f"the hub still lists alice's server: {model.text[:300]}"
            time.sleep(1)

    # the next ELN click starts a new container on the same volume: the notebook from before is there
    fresh = stack.token("alice", "alice-pw")
    stack.eln_create(fresh, "engine", "after.ipynb", "x = 2")
    listing = docker("exec", user_container("alice", PREFIX)["Id"], "ls", "/home/jovyan/work/engine").stdout.split()
    assert {"before.ipynb", "after.ipynb"} <= set(listing), listing
    print(
        f"engine restart: engine back {took:.1f} s after SIGTERM, hub answering {hub_back:.1f} s later,"
        f" next click worked {time.monotonic() - restarted:.1f} s after the engine was back"
    )
