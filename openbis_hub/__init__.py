"""openbis-hub: JupyterHub for openBIS."""

from ._version import __version__

__all__ = ["__version__"]
