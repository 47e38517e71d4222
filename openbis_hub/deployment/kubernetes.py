"""openbis-hub on Kubernetes with the Zero to JupyterHub Helm chart (KubeSpawner).

``deploy/kubernetes/values.yaml`` is rendered by this module (``python -m
openbis_hub.deployment.kubernetes > deploy/kubernetes/values.yaml``; a test checks
the file is current).  Its ``hub.extraConfig`` calls :func:`configure_kubernetes`
in the hub pod, so the launch service, its roles and scopes and the headers are the
very ones :func:`openbis_hub.deployment.configure` gives docker compose.
"""

from __future__ import annotations

import sys

from .docker import CONTAINER_CA_PATH
from .hub import SERVICE_NAME, configure_authenticator, configure_service
from .settings import Settings

SERVICE_PORT = 10101
# where the service, in the hub pod, reaches users' servers: the chart's proxy Service
PROXY_URL = "http://proxy-http:8000"
CA_MOUNT = CONTAINER_CA_PATH.rsplit("/", 1)[0]

EXTRA_CONFIG = """\
# openbis-hub: login with openBIS, the launch service the ELN calls (https://<hub>/services/openbis/),
# its roles and scopes, and the headers that let the ELN frame the hub; all from hub.extraEnv
from openbis_hub.deployment import Settings
from openbis_hub.deployment.kubernetes import configure_kubernetes

configure_kubernetes(c, Settings.from_environ())
"""

HEADER = """\
# openbis-hub on Kubernetes with the Zero to JupyterHub Helm chart (KubeSpawner).
# Rendered by `python -m openbis_hub.deployment.kubernetes`; do not edit, change the module.
#
#   kubectl create namespace openbis-hub
#   kubectl -n openbis-hub create secret generic openbis-hub \\
#       --from-literal=crypt-key="$(openssl rand -hex 32)"
#   kubectl -n openbis-hub create secret tls openbis-hub-tls --cert=hub.crt --key=hub.key
#   kubectl -n openbis-hub create configmap openbis-ca --from-file=openbis-ca.pem   # if needed
#   helm upgrade --install openbis-hub jupyterhub/jupyterhub --version 4.3.1 \\
#       -n openbis-hub -f deploy/kubernetes/values.yaml
#
# Replace every "example" below.  See docs/deploy.md ("Kubernetes").  The hub image is the
# chart's hub image with the openbis-hub wheel installed; the single-user image is
# docker/singleuser/Dockerfile, pushed to your registry.
"""


def configure_kubernetes(c, settings: Settings) -> None:
    """What the chart does not do: login with openBIS, the launch service, roles, scopes, headers."""
    settings.check()
    configure_authenticator(c, settings)
    # the service listens on the pod's network, where the chart's proxy reaches it
    configure_service(c, settings, url=f"http://hub:{SERVICE_PORT}", proxy_url=PROXY_URL, listen_ip="0.0.0.0")
    c.Spawner.start_timeout = max(1, int(settings.spawn_timeout))
    environment = dict(c.KubeSpawner.environment) if "environment" in c.KubeSpawner else {}
    environment["OPENBIS_HUB_FRAME_ANCESTORS"] = " ".join(settings.frame_ancestors)
    c.KubeSpawner.environment = environment


def values(example: Settings | None = None) -> dict:
    """The chart's values for a site described by ``example`` (its URLs are placeholders to replace)."""
    s = example or Settings(
        openbis_url="https://openbis.example.org",
        openbis_ca_bundle=CONTAINER_CA_PATH,
        public_url="https://jupyter.example.org",
    )

    def ca_volume():
        return {"name": "openbis-ca", "configMap": {"name": "openbis-ca", "optional": True}}

    def ca_mount():
        return {"name": "openbis-ca", "mountPath": CA_MOUNT, "readOnly": True}

    return {
        "hub": {
            "image": {"name": "registry.example.org/openbis-hub-k8s-hub", "tag": _version()},
            "config": {
                "JupyterHub": {"authenticator_class": "openbis"},
                # openBIS decides who may log in
                "Authenticator": {"allow_all": True, "admin_users": list(s.admin_users)},
            },
            "extraEnv": {
                "OPENBIS_URL": s.openbis_url,
                "OPENBIS_CA_BUNDLE": s.openbis_ca_bundle,
                "OPENBIS_HUB_ELN_ORIGINS": " ".join(s.eln_origins),
                "OPENBIS_HUB_PUBLIC_URL": s.public_url,
                "OPENBIS_HUB_SPAWN_TIMEOUT": str(int(s.spawn_timeout)),
                "JUPYTERHUB_CRYPT_KEY": {"valueFrom": {"secretKeyRef": {"name": "openbis-hub", "key": "crypt-key"}}},
            },
            "extraVolumes": [ca_volume()],
            "extraVolumeMounts": [ca_mount()],
            # the launch service runs in the hub pod; the proxy pod reaches it through the hub's Service
            "service": {"extraPorts": [{"name": "openbis-service", "port": SERVICE_PORT, "targetPort": SERVICE_PORT}]},
            "networkPolicy": {
                "ingress": [
                    {
                        "ports": [{"port": SERVICE_PORT}],
                        "from": [{"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "proxy"}}}],
                    }
                ]
            },
            "extraConfig": {"10-openbis-hub": EXTRA_CONFIG},
        },
        "proxy": {
            "https": {
                "enabled": True,
                "type": "secret",
                "hosts": ["jupyter.example.org"],
                "secret": {"name": "openbis-hub-tls"},
            }
        },
        "singleuser": {
            "image": {
                "name": "registry.example.org/openbis-hub-singleuser",
                "tag": _version(),
                "pullPolicy": "IfNotPresent",
            },
            "defaultUrl": "/lab",
            "uid": 1000,
            "fsGid": 100,
            # one persistent volume per user, at the notebook directory
            "storage": {
                "type": "dynamic",
                "capacity": "10Gi",
                "homeMountPath": s.notebook_dir,
                "extraVolumes": [ca_volume()],
                "extraVolumeMounts": [ca_mount()],
            },
            "extraEnv": {"OPENBIS_CA_BUNDLE": CONTAINER_CA_PATH},
            "memory": {"limit": "2G", "guarantee": "512M"},
            "cpu": {"limit": 1.0, "guarantee": 0.1},
            "startTimeout": int(s.spawn_timeout),
        },
        # the chart's own idle culler (jupyterhub-idle-culler, least-privilege role)
        "cull": {"enabled": True, "timeout": s.idle_timeout, "every": 300, "users": False},
        "scheduling": {"userScheduler": {"enabled": False}},
    }


def _version() -> str:
    from .._version import __version__

    return __version__


def render(example: Settings | None = None) -> str:
    import yaml

    class Literal(str):
        pass

    def literal(dumper, text):
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")

    dumper = type("Dumper", (yaml.SafeDumper,), {})
    dumper.add_representer(Literal, literal)
    data = values(example)
    data["hub"]["extraConfig"] = {k: Literal(v) for k, v in data["hub"]["extraConfig"].items()}
    return HEADER + "\n" + yaml.dump(data, Dumper=dumper, sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render())

__all__ = ["SERVICE_NAME", "configure_kubernetes", "render", "values"]
