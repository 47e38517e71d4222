"""How a site deploys openbis-hub: its settings and the hub configuration built from them.

``jupyterhub_config.py`` is two lines::

    from openbis_hub.deployment import configure_from_environment
    configure_from_environment(get_config())

:mod:`.settings` names every setting once (with its environment variable,
default and help); :mod:`.hub` builds the hub's configuration from them (the
launch service, its roles and scopes, headers, the spawner); :mod:`.docker`
is the Docker / Docker Swarm deployment; :mod:`.kubernetes` renders the Zero to
JupyterHub values from the same functions.
"""

from .hub import configure, configure_from_environment
from .settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError", "configure", "configure_from_environment"]
