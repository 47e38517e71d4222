"""JupyterHub configuration for openbis-hub.

Every setting comes from the environment (``.env`` for docker compose, see
``.env.example``); ``docs/reference/configuration.md`` lists them all, and
:mod:`openbis_hub.deployment` builds the configuration from them.  Add your
own ``c.<Class>.<trait> = ...`` lines below to go beyond them.
"""

from pathlib import Path

from openbis_hub.deployment import configure_from_environment

# an `npm install` next to this file provides configurable-http-proxy
configure_from_environment(get_config(), config_dir=Path(__file__).resolve().parent)  # noqa: F821
