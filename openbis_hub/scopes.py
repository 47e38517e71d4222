"""The hub's custom scope for the launch service, and its check in the hub's handlers."""

from __future__ import annotations

from tornado import web

#: lets the launch service log users in with their openBIS token and hand over their notebooks
SYNC_SCOPE = "custom:openbis-hub:sync"


def require_sync_scope(handler) -> None:
    """403 unless the request's credentials hold ``SYNC_SCOPE`` (a JupyterHub ``APIHandler``).

    ``needs_scope()`` cannot be used: it checks scope names at import, before the
    hub has registered its custom scopes from the configuration.
    """
    if handler.current_user is None:
        raise web.HTTPError(403, "Missing or invalid credentials.")
    if SYNC_SCOPE not in handler.expanded_scopes:
        raise web.HTTPError(403, f"Action is not authorized with current scopes; requires {SYNC_SCOPE}")
