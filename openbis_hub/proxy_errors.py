"""The proxy's error page for the services' URLs: JSON, as the services answer, not the hub's HTML page.

When a hub-managed service does not answer (restarting after a crash, killed
mid-request), configurable-http-proxy asks the hub for an error page:
``GET /hub/error/<code>?url=<the request's URL>``, and passes on its body and
``Content-Type`` with the status ``<code>``.  For a URL under the hub's
``services/`` prefix an integrator's client (or the ELN's ``alert``) then
reads one JSON line instead of a page written for browsers; every other URL
keeps JupyterHub's own page.

Registered through the authenticator's ``get_handlers``, which JupyterHub adds
before its own handlers, so this one answers ``/hub/error/<code>``:
https://github.com/jupyterhub/jupyterhub/blob/6.1.1/jupyterhub/app.py#L1821-L1823
(``tests/test_no_tokens_in_logs.py`` kills the service and fails if the page is not this JSON).
"""

from __future__ import annotations

import json
from http.client import responses
from urllib.parse import urlsplit

from jupyterhub.handlers.pages import ProxyErrorHandler
from jupyterhub.utils import url_path_join

MESSAGES = {
    502: "The service answered with an error the proxy could not pass on; try again.",
    503: "The service is not answering: it is restarting or down. Try again in a few seconds.",
    504: "The service did not answer in time; try again.",
}


class ServiceAwareErrorHandler(ProxyErrorHandler):
    """``/hub/error/<code>``: JSON ``{"status", "message"}`` for the services' URLs, else the hub's page."""

    async def get(self, status_code_s):
        # the original URL carries the ELN's ?token=: it is only parsed, never logged or echoed
        path = urlsplit(self.get_argument("url", "")).path
        if not path.startswith(url_path_join(self.base_url, "services/")):
            return await super().get(status_code_s)
        status = int(status_code_s)
        message = MESSAGES.get(status, f"The proxy could not reach the service ({responses.get(status, status)}).")
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"status": status, "message": message}))


handlers = [(r"/error/(\d+)", ServiceAwareErrorHandler)]
