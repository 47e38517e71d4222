"""The deployment's settings and the hub configuration built from them (no processes)."""

from __future__ import annotations

import json

import pytest
from traitlets.config import Config

from openbis_hub.deployment import Settings, SettingsError, configure, configure_from_environment
from openbis_hub.deployment.hub import roles, service
from openbis_hub.service.app import CONFIG_ENV, OpenBISService

BASE = {"OPENBIS_URL": "https://openbis.example.org", "OPENBIS_HUB_PROXY_COMMAND": "/bin/true"}


def built(tmp_path, **environ) -> Config:
    c = Config()
    settings = Settings.from_environ({**BASE, "OPENBIS_HUB_STATE_DIR": str(tmp_path), **environ})
    configure(c, settings)
    return c


def service_settings(c: Config) -> dict:
    (entry,) = [s for s in c.JupyterHub.services if s["name"] == "openbis"]
    return json.loads(entry["environment"][CONFIG_ENV])["OpenBISService"]


def test_every_setting_has_one_variable_and_a_help_string():
    names = Settings.environment_names()
    assert len(set(names.values())) == len(names)
    for name, trait in Settings.class_traits().items():
        if name in names:
            assert len(trait.help) > 20, name


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("TRUE", True), ("yes", True), ("1", True), ("false", False), ("0", False)]
)
def test_booleans(raw, expected):
    assert Settings.from_environ({"OPENBIS_HUB_OVERWRITE": raw}).overwrite is expected


def test_a_bad_value_names_the_variable():
    with pytest.raises(SettingsError, match="OPENBIS_HUB_OVERWRITE must be true or false, not 'maybe'"):
        Settings.from_environ({"OPENBIS_HUB_OVERWRITE": "maybe"})
    with pytest.raises(SettingsError, match="OPENBIS_HUB_SPAWN_TIMEOUT must be a number"):
        Settings.from_environ({"OPENBIS_HUB_SPAWN_TIMEOUT": "two minutes"})
    with pytest.raises(SettingsError, match="spawner"):
        Settings.from_environ({"OPENBIS_HUB_SPAWNER": "kubernetes"})


def test_lists_take_spaces_and_commas():
    s = Settings.from_environ({"OPENBIS_HUB_ELN_ORIGINS": "https://a.example, https://b.example https://c.example"})
    assert s.eln_origins == ["https://a.example", "https://b.example", "https://c.example"]
    assert s.frame_ancestors == s.eln_origins  # its default


def test_eln_origin_defaults_to_openbis():
    s = Settings.from_environ({"OPENBIS_URL": "https://openbis.example.org:8443/"})
    assert s.openbis_url == "https://openbis.example.org:8443"
    assert s.eln_origins == ["https://openbis.example.org:8443"]


def test_empty_variables_keep_the_default():
    assert Settings.from_environ({"OPENBIS_HUB_SPAWN_TIMEOUT": " "}).spawn_timeout == 120


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "OPENBIS_URL is not set"),
        ({"OPENBIS_URL": "openbis.example.org"}, "must start with https://"),
        ({**BASE, "OPENBIS_HUB_SSL_CERT": "/c.pem"}, "go together"),
        ({**BASE, "OPENBIS_HUB_SPAWN_TIMEOUT": "0"}, "more than 0"),
    ],
)
def test_settings_that_cannot_work_are_refused(environ, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_environ(environ).check()


def test_the_hub_stops_with_one_line(capsys):
    with pytest.raises(SystemExit):
        configure_from_environment(Config(), environ={})
    assert capsys.readouterr().err.strip().startswith("openbis-hub: OPENBIS_URL is not set")
    with pytest.raises(SystemExit):
        configure_from_environment(Config(), environ={"OPENBIS_URL": "https://openbis.example.org"})
    assert capsys.readouterr().err.strip() == (
        "openbis-hub: JUPYTERHUB_CRYPT_KEY is not set; it encrypts the stored openBIS tokens. "
        "Make one with: openssl rand -hex 32"
    )


def test_one_spawn_timeout_for_the_hub_and_the_service(tmp_path):
    c = built(
        tmp_path,
        OPENBIS_HUB_SPAWNER="local",
        OPENBIS_HUB_BIND_URL="http://127.0.0.1:8000",
        OPENBIS_HUB_SPAWN_TIMEOUT="45",
    )
    assert c.Spawner.start_timeout == 45
    assert service_settings(c)["spawn_timeout"] == 45


def test_the_service_gets_the_sites_settings(tmp_path):
    c = built(
        tmp_path,
        OPENBIS_HUB_SPAWNER="local",
        OPENBIS_HUB_BIND_URL="http://127.0.0.1:8123",
        OPENBIS_HUB_OVERWRITE="true",
        OPENBIS_HUB_TRUSTED_PROXIES="10.0.0.2",
        OPENBIS_HUB_PUBLIC_URL="https://jupyter.example.org",
    )
    config = service_settings(c)
    assert config["overwrite"] is True
    assert config["trusted_proxies"] == ["10.0.0.2"]
    assert config["proxy_url"] == "http://127.0.0.1:8123"
    assert config["eln_origins"] == ["https://openbis.example.org"]
    assert config["public_url"] == "https://jupyter.example.org"


def test_the_service_reads_what_the_hub_passes(monkeypatch):
    config = {"OpenBISService": {"overwrite": True, "spawn_timeout": 45.0, "eln_origins": ["https://eln.example"]}}
    monkeypatch.setenv(CONFIG_ENV, json.dumps(config))
    app = OpenBISService()
    app.initialize(["--spawn-timeout=50"])  # the command line wins
    assert app.overwrite is True
    assert app.eln_origins == ["https://eln.example"]
    assert app.spawn_timeout == 50


def test_the_service_role_is_narrow():
    (launcher,) = [r for r in roles((6, 1)) if r["name"] == "openbis-launcher"]
    assert launcher["scopes"] == ["custom:openbis-hub:sync", "read:servers", "start:servers", "tokens"]
    (old,) = [r for r in roles((5, 3)) if r["name"] == "openbis-launcher"]
    assert "servers" in old["scopes"]
    for role in roles():
        assert not any(
            s.startswith(("admin:users", "access:servers ")) or s == "access:servers" for s in role["scopes"]
        )


def test_no_secret_goes_into_the_services_environment(tmp_path):
    entry = service(Settings(openbis_url="https://openbis.example.org"))
    assert set(entry["environment"]) == {CONFIG_ENV, "PATH"}


def test_https_cookies_use_tornados_lower_case_keys(tmp_path):
    c = built(
        tmp_path,
        OPENBIS_HUB_SPAWNER="local",
        OPENBIS_HUB_BIND_URL="https://127.0.0.1:8000",
        OPENBIS_HUB_SSL_CERT="/c",
        OPENBIS_HUB_SSL_KEY="/k",
    )
    assert c.JupyterHub.tornado_settings["cookie_options"] == {"samesite": "None", "secure": True}
    assert c.JupyterHub.ssl_cert == "/c"


def test_frame_ancestors_header(tmp_path):
    c = built(
        tmp_path,
        OPENBIS_HUB_SPAWNER="local",
        OPENBIS_HUB_BIND_URL="http://127.0.0.1:8000",
        OPENBIS_HUB_FRAME_ANCESTORS="https://eln.example",
    )
    csp = c.JupyterHub.tornado_settings["headers"]["Content-Security-Policy"]
    assert csp == "frame-ancestors 'self' https://eln.example"
    assert c.Spawner.environment["OPENBIS_HUB_FRAME_ANCESTORS"] == "https://eln.example"


def test_the_local_spawner_refuses_the_network(tmp_path):
    with pytest.raises(SettingsError, match="refuses to listen on http://:8000"):
        built(tmp_path, OPENBIS_HUB_SPAWNER="local")
    c = built(tmp_path, OPENBIS_HUB_SPAWNER="local", OPENBIS_HUB_ALLOW_LOCAL_SPAWNER_ON_NETWORK="true")
    assert c.JupyterHub.spawner_class == "jupyterhub.spawner.SimpleLocalProcessSpawner"


def test_no_proxy_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    settings = Settings.from_environ({"OPENBIS_URL": BASE["OPENBIS_URL"], "OPENBIS_HUB_STATE_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="npm install"):
        configure(Config(), settings)
    (tmp_path / "node_modules" / ".bin").mkdir(parents=True)
    (tmp_path / "node_modules" / ".bin" / "configurable-http-proxy").touch()
    c = Config()
    settings.spawner = "local"
    settings.bind_url = "http://127.0.0.1:8000"
    configure(c, settings, config_dir=tmp_path)
    assert c.ConfigurableHTTPProxy.command[-1] == str(tmp_path / "node_modules" / ".bin" / "configurable-http-proxy")
