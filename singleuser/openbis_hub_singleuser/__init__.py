"""Jupyter server extension run in each user's notebook server.

* writes the openBIS token to ``~/.pybis/<host>.token`` so ``Openbis()`` works
  in kernels, read from the owner's auth_state on the hub (at start, on ``POST
  openbis/token`` and every minute);
* ``GET|POST openbis/save``: register the notebook (+ HTML) as an openBIS dataset;
* ``GET openbis/config``, ``GET openbis/hash``: for the JupyterLab extension;
* the side panel: ``GET openbis/session|tree|search|entity|files|types``,
  ``POST openbis/downloads`` (+ ``GET openbis/downloads/<id>``), ``POST openbis/open``;
* CSP ``frame-ancestors`` and iframe-friendly cookies for embedding in openBIS.
"""

from __future__ import annotations

from jupyter_server.utils import url_path_join

from .extension import OpenBISServerExtension

__all__ = ["OpenBISServerExtension", "load_jupyter_server_extension"]


def _jupyter_server_extension_points():
    return [{"module": "openbis_hub_singleuser"}]


def _jupyter_labextension_paths():
    return [{"src": "../labextension", "dest": "openbis-hub"}]


def _load_jupyter_server_extension(serverapp):
    from openbis_hub import redact

    from . import handlers

    redact.install(serverapp.log)  # no token in this server's log, whoever logs it
    ext = OpenBISServerExtension(parent=serverapp, log=serverapp.log)
    ext.setup(serverapp)
    serverapp.web_app.settings["openbis_hub"] = ext
    base = serverapp.web_app.settings["base_url"]
    routes = [
        ("openbis/config", handlers.ConfigHandler),
        ("openbis/token", handlers.TokenHandler),
        ("openbis/pending", handlers.PendingHandler),
        ("openbis/save", handlers.SaveHandler),
        ("openbis/hash", handlers.HashHandler),
        # the side panel
        ("openbis/session", handlers.SessionHandler),
        ("openbis/tree", handlers.TreeHandler),
        ("openbis/search", handlers.SearchHandler),
        ("openbis/entity", handlers.EntityHandler),
        ("openbis/files", handlers.FilesHandler),
        ("openbis/types", handlers.TypesHandler),
        ("openbis/downloads", handlers.DownloadsHandler),
        (r"openbis/downloads/([0-9a-f]{32})", handlers.DownloadHandler),
        ("openbis/open", handlers.OpenHandler),
    ]
    serverapp.web_app.add_handlers(
        ".*$", [(url_path_join(base, route), handler, {"ext": ext}) for route, handler in routes]
    )
    serverapp.log.info("openbis-hub: extension loaded (openBIS %s)", ext.openbis_url or "not configured")


load_jupyter_server_extension = _load_jupyter_server_extension
