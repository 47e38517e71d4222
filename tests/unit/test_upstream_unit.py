"""The few JupyterHub and tornado internals openbis-hub relies on: these tests fail if upstream changes them."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from jupyterhub.handlers import base, login


def _handler(host="hub.example.org"):
    handler = base.BaseHandler.__new__(base.BaseHandler)
    handler.application = SimpleNamespace(settings={"subdomain_host": ""})
    handler.request = SimpleNamespace(host=host, headers={}, protocol="https")
    return handler


def test_validate_next_url_keeps_local_paths_and_drops_other_hosts():
    """auth.OpenBISLoginHandler validates ?next= with BaseHandler._validate_next_url."""
    handler = _handler()
    assert handler._validate_next_url("/user/alice/notebooks/a%20b.ipynb") == "/user/alice/notebooks/a%20b.ipynb"
    assert handler._validate_next_url("https://evil.example/x") == ""
    assert handler._validate_next_url("//evil.example/x") == ""
    assert handler._validate_next_url("https://hub.example.org/user/alice/") == "/user/alice/"


def test_login_handler_sets_the_user_as_we_do():
    """LoginHandler marks the logged-in user in ``_jupyterhub_user``; so does our redirect."""
    assert "self._jupyterhub_user = user" in inspect.getsource(login.LoginHandler.post)


def test_tornado_sets_every_cookie_through_set_cookie():
    # openbis_hub_singleuser.extension._install_cookie_hook wraps RequestHandler.set_cookie and
    # passes secure= and samesite=; signed cookies and the xsrf cookie must go through it
    from tornado import web

    parameters = inspect.signature(web.RequestHandler.set_cookie).parameters
    assert parameters["secure"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["samesite"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "self.set_cookie(" in inspect.getsource(web.RequestHandler.set_signed_cookie)
    assert "self.set_cookie(" in inspect.getsource(web.RequestHandler.xsrf_token.fget)
