"""deploy/kubernetes/values.yaml: rendered from openbis_hub.deployment, loads and applies.

No cluster here: the values are parsed with pyyaml, the chart's
``hub.config`` and ``hub.extraConfig`` are applied to a traitlets Config the
way the chart's jupyterhub_config.py does, and the result is checked against
this project's authenticator, service, scopes and single-user image layout.
"""

from __future__ import annotations

import importlib.util
import json
import os
from importlib.metadata import entry_points
from pathlib import Path
from unittest import mock

import pytest
import yaml
from jupyterhub.scopes import scope_definitions
from traitlets.config import Config

from openbis_hub.deployment import Settings, kubernetes
from openbis_hub.deployment.docker import CONTAINER_CA_PATH
from openbis_hub.deployment.hub import roles
from openbis_hub.service.app import CONFIG_ENV

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "values.yaml"


@pytest.fixture(scope="module")
def values():
    return yaml.safe_load(VALUES.read_text())


def render_hub_config(values) -> Config:
    """hub.config + hub.extraConfig (in name order), as the chart applies them."""
    c = Config()
    for section, traits in values["hub"]["config"].items():
        for name, value in traits.items():
            setattr(c[section], name, value)
    c.JupyterHub.services = []
    c.KubeSpawner.environment = {k: v for k, v in values["singleuser"].get("extraEnv", {}).items()}
    env = {k: v for k, v in values["hub"]["extraEnv"].items() if isinstance(v, str)}
    env["JUPYTERHUB_CRYPT_KEY"] = "00" * 32
    with mock.patch.dict(os.environ, env):
        for name in sorted(values["hub"]["extraConfig"]):
            code = values["hub"]["extraConfig"][name]
            exec(compile(code, f"extraConfig/{name}", "exec"), {"c": c, "get_config": lambda: c})
    return c


def test_the_file_is_what_the_module_renders():
    # a role, a scope or a port changed in openbis_hub.deployment must reach the Kubernetes values too
    assert VALUES.read_text() == kubernetes.render(), "run: python -m openbis_hub.deployment.kubernetes > " + str(
        VALUES
    )


def test_top_level_sections(values):
    assert set(values) >= {"hub", "proxy", "singleuser", "cull"}


def test_authenticator_is_ours(values):
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] == "openbis"
    names = {ep.name: ep.value for ep in entry_points(group="jupyterhub.authenticators")}
    assert names.get("openbis") == "openbis_hub.auth:OpenBISAuthenticator"
    c = render_hub_config(values)
    assert c.OpenBISAuthenticator.openbis_url == values["hub"]["extraEnv"]["OPENBIS_URL"]


def test_extra_config_renders_the_launch_service(values):
    c = render_hub_config(values)
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "openbis"]
    assert service["command"][1:] == ["-m", "openbis_hub.service"]
    assert importlib.util.find_spec("openbis_hub.service.__main__") is not None
    port = int(service["url"].rsplit(":", 1)[1])
    assert port in [p["port"] for p in values["hub"]["service"]["extraPorts"]]
    assert port in [p["port"] for rule in values["hub"]["networkPolicy"]["ingress"] for p in rule["ports"]]
    config = json.loads(service["environment"][CONFIG_ENV])["OpenBISService"]
    assert config["openbis_url"] == values["hub"]["extraEnv"]["OPENBIS_URL"]
    assert config["ip"] == "0.0.0.0"  # the proxy pod reaches it through the hub's Service
    assert config["proxy_url"] == "http://proxy-http:8000"
    csp = c.JupyterHub.tornado_settings["headers"]["Content-Security-Policy"]
    assert csp == "frame-ancestors 'self' https://openbis.example.org"
    assert c.KubeSpawner.environment["OPENBIS_HUB_FRAME_ANCESTORS"] == "https://openbis.example.org"


def test_roles_use_real_scopes_and_services(values):
    c = render_hub_config(values)
    services = {s["name"] for s in c.JupyterHub.services}
    assert c.JupyterHub.load_roles == roles()  # the same roles as docker compose gets
    for role in c.JupyterHub.load_roles:
        for scope in role["scopes"]:
            assert scope.split("!")[0] in {**scope_definitions, **c.JupyterHub.custom_scopes}, (role["name"], scope)
        assert set(role.get("services", [])) <= services, role["name"]


def test_the_charts_own_services_and_roles_are_kept(values):
    c = Config()
    c.JupyterHub.services = [{"name": "jupyterhub-idle-culler", "admin": False}]
    c.JupyterHub.load_roles = [{"name": "jupyterhub-idle-culler", "scopes": ["list:users"]}]
    with mock.patch.dict(os.environ, {"OPENBIS_URL": "https://openbis.example.org"}):
        kubernetes.configure_kubernetes(c, Settings.from_environ())
    assert [s["name"] for s in c.JupyterHub.services] == ["jupyterhub-idle-culler", "openbis"]
    assert "jupyterhub-idle-culler" in [r["name"] for r in c.JupyterHub.load_roles]


def test_crypt_key_comes_from_a_secret(values):
    ref = values["hub"]["extraEnv"]["JUPYTERHUB_CRYPT_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] and ref["key"]


def test_singleuser_matches_the_image(values):
    su = values["singleuser"]
    assert su["storage"]["homeMountPath"] == Settings().notebook_dir
    assert su["storage"]["type"] == "dynamic"
    assert su["uid"] == 1000  # jovyan in docker/singleuser/Dockerfile
    assert su["image"]["tag"] != "latest"
    mount = su["storage"]["extraVolumeMounts"][0]
    assert mount["readOnly"] is True
    assert su["extraEnv"]["OPENBIS_CA_BUNDLE"] == CONTAINER_CA_PATH
    assert CONTAINER_CA_PATH.startswith(mount["mountPath"] + "/")
    assert su["memory"]["limit"] and su["cpu"]["limit"]


def test_https_and_culling(values):
    assert values["proxy"]["https"]["enabled"] is True
    assert values["cull"]["enabled"] is True and values["cull"]["timeout"] > 0
