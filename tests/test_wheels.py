"""What ships: the three distributions build as wheels, and the two production ones work alone.

The hub wheel builds with no Node.js anywhere on ``PATH`` and holds neither the
openBIS stand-in nor the demo nor the single-user side. Installed into a fresh
virtual environment (no repository on ``sys.path``), it runs a hub; the
single-user wheel, in another fresh environment, runs the users' servers; the
stand-in comes from the development distribution. An ELN click then works
end to end.

No network: the wheels are built without build isolation (hatchling from the
test environment) and installed without dependencies; the fresh environments
see the test environment's third-party packages through a ``.pth`` line, which
adds that folder without running its ``.pth`` files, so the repository's own
editable installs stay out.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import psutil
import pytest

from conftest import openbis_login
from eln_client import eln_create, notebook, stored
from hub import REPO, RunningHub, proxy_available

pytestmark = pytest.mark.skipif(not proxy_available(), reason="configurable-http-proxy missing (npm install)")

SITE_PACKAGES = sysconfig.get_paths()["purelib"]


def build_wheel(source: Path, out: Path, path: str) -> Path:
    before = set(out.glob("*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        cwd=out,
        env={**os.environ, "PATH": path},
        capture_output=True,
    )
    (wheel,) = set(out.glob("*.whl")) - before
    return wheel


def fresh_venv(where: Path, *wheels: Path) -> Path:
    """A new environment with only ``wheels`` installed (their dependencies seen from the test environment)."""
    venv.create(where, with_pip=False)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "zz_test_dependencies.pth").write_text(SITE_PACKAGES + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", *map(str, wheels)],
        check=True,
        capture_output=True,
        cwd=where,
    )
    return python


def imports(python: Path, module: str) -> str | None:
    """Where ``python`` imports ``module`` from, or None."""
    done = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.__file__)"], capture_output=True, text=True, cwd="/"
    )
    return done.stdout.strip() if done.returncode == 0 else None


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheels")
    # a PATH with python and nothing else: no node, no npm, no jlpm
    bare = out / "bare-bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    assert shutil.which("node", path=str(bare)) is None
    hub = build_wheel(REPO, out, str(bare))
    dev = build_wheel(REPO / "dev", out, str(bare))
    singleuser = build_wheel(REPO / "singleuser", out, os.environ["PATH"])
    return {"hub": hub, "dev": dev, "singleuser": singleuser}


def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def test_the_hub_wheel_is_the_hub_side_only(wheels):
    files = names(wheels["hub"])
    packages = {name.split("/")[0] for name in files if not name.startswith("openbis_hub-")}
    assert packages == {"openbis_hub"}
    assert not [f for f in files if "standin" in f or "demo" in f or "labextension" in f]
    assert "openbis_hub/deployment/settings.py" in files
    assert "openbis_hub-0.1.0.data/data/share/openbis-hub/jupyterhub_config.py" in files
    metadata = next(f for f in files if f.endswith("METADATA"))
    with zipfile.ZipFile(wheels["hub"]) as z:
        requires = [line for line in z.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert not [r for r in requires if "jupyterlab" in r or "pybis" in r]


def test_the_singleuser_wheel_carries_the_built_extension(wheels):
    files = names(wheels["singleuser"])
    assert {name.split("/")[0] for name in files if not name.startswith("openbis_hub_singleuser-")} == {
        "openbis_hub_singleuser"
    }
    data = "openbis_hub_singleuser-0.1.0.data/data/"
    assert f"{data}share/jupyter/labextensions/openbis-hub/package.json" in files
    assert f"{data}etc/jupyter/jupyter_server_config.d/openbis_hub_singleuser.json" in files
    assert not [f for f in files if "standin" in f]


def test_the_dev_wheel_holds_the_standin_and_the_demo(wheels):
    files = names(wheels["dev"])
    assert "openbis_hub_dev/standin/app.py" in files
    assert "openbis_hub_dev/demo.py" in files


async def test_the_wheels_alone_run_the_eln_click(wheels, openbis_standin, tmp_path):
    hub_python = fresh_venv(tmp_path / "hub-venv", wheels["hub"])
    user_python = fresh_venv(tmp_path / "user-venv", wheels["hub"], wheels["singleuser"])
    # each environment has its own parts and nothing else of the project
    assert imports(hub_python, "openbis_hub").startswith(str(tmp_path / "hub-venv"))
    assert imports(hub_python, "openbis_hub_singleuser") is None
    assert imports(hub_python, "openbis_hub_dev") is None
    assert imports(user_python, "openbis_hub_singleuser").startswith(str(tmp_path / "user-venv"))
    assert imports(user_python, "openbis_hub_dev") is None

    # the jupyterhub_config.py that ships in the wheel, as a site would use it
    config = tmp_path / "hub-venv" / "share" / "openbis-hub" / "jupyterhub_config.py"
    hub = RunningHub(
        tmp_path / "hub",
        openbis_standin.url,
        openbis_standin.ca_file,
        python=str(hub_python),
        base_config=config,
        extra_env={"OPENBIS_HUB_PROXY_COMMAND": str(REPO / "node_modules" / ".bin" / "configurable-http-proxy")},
        extra_config=f"c.Spawner.cmd = [{str(user_python)!r}, '-m', 'jupyterhub.singleuser']",
    ).start()
    try:
        token = openbis_login(openbis_standin, "alice")
        nb = notebook("print('from the wheels')")
        dry, write = await eln_create(hub, token, "wheels", "click.ipynb", nb)
        assert write.status_code == 200, write.text
        model = await asyncio.to_thread(stored, hub, "alice", "wheels/click.ipynb")
        assert model is not None and "from the wheels" in json.dumps(model["content"])
        # alice's server is the user environment's, with the extension from its wheel loaded
        servers = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0] == str(user_python)]
        assert servers, "no single-user server runs from the single-user wheel's environment"
        assert "openbis-hub: extension loaded" in hub.log_text()
    finally:
        hub.stop()
