"""openbis_hub.redact: no token reaches a log line, raw or URL-encoded; ordinary lines stay as they are."""

from __future__ import annotations

import io
import logging
import logging.config
import signal
import subprocess
import sys
import textwrap
import timeit
from urllib.parse import quote

import pytest

from openbis_hub.redact import SECRET, RedactingFilter, install, redact
from openbis_hub_dev.standin.store import new_pat_hash, new_session_token

# real openBIS format, and what the stand-in issues (same format, for several kinds of user id)
SESSION = "alice-260101120000123xA1B2C3D4E5F60718293A4B5C6D7E8F90"
PAT = "$pat-" + SESSION
STANDIN_TOKENS = [new_session_token(u) for u in ("alice", "Jane.Doe", "admin", "j.doe@example.org")] + [
    new_pat_hash(u) for u in ("bob", "Jane.Doe")
]
HUB_TOKEN = "0123456789abcdef0123456789abcdef"
ALL_TOKENS = [SESSION, PAT, *STANDIN_TOKENS]


def assert_clean(text: str) -> None:
    """No token in ``text``, in any of the forms it could take in a URL, and something was redacted."""
    for token in ALL_TOKENS:
        for form in {token, quote(token, safe=""), quote(quote(token, safe=""), safe=""), token.split("-", 1)[1]}:
            assert form not in text, f"{form!r} in {text!r}"
    assert SECRET in text


# ------------------------------------------------------------------ redact()


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "session",
        "sessionID",
        "sessionToken",
        "api_token",
        "access_token",
        "password",
        "userSessionId",
        "_xsrf",
        "TOKEN",
        "Token",
    ],
)
@pytest.mark.parametrize("token", ALL_TOKENS[:3])
def test_query_parameter_raw(name, token):
    line = f"302 GET /hub/login?next=%2Fhub%2F&{name}={token}&folder=x (@127.0.0.1) 3.2ms"
    assert redact(line) == f"302 GET /hub/login?next=%2Fhub%2F&{name}={SECRET}&folder=x (@127.0.0.1) 3.2ms"


@pytest.mark.parametrize("token", ALL_TOKENS)
def test_launch_url_and_login_forms(token):
    for url, expected in [
        (
            f"/services/openbis/?token={token}&folder=x&filename=y.ipynb&test=True",
            f"/services/openbis/?token={SECRET}&folder=x&filename=y.ipynb&test=True",
        ),
        (f"/hub/login?session={token}&next=%2Fhub%2Fhome", f"/hub/login?session={SECRET}&next=%2Fhub%2Fhome"),
        (f"/hub/login?token={token}", f"/hub/login?token={SECRET}"),
        (
            f"/datastore_server/20261123093000000-4/original/x.csv?sessionID={token}",
            f"/datastore_server/20261123093000000-4/original/x.csv?sessionID={SECRET}",
        ),
        (f"/hub/login?token={quote(token, safe='')}&x=1", f"/hub/login?token={SECRET}&x=1"),  # %24pat-...
    ]:
        assert redact(url) == expected
        assert_clean(redact(url))


@pytest.mark.parametrize("token", ALL_TOKENS)
def test_url_encoded_once_and_twice(token):
    inner = f"/services/openbis/?token={token}&folder=a b&filename=y.ipynb"
    once = quote(inner, safe="")
    twice = quote(once, safe="")
    for url in (f"/hub/error/503?url={once}", f"/hub/error/503?url={twice}", f"/hub/login?next={once}&x=1"):
        out = redact(url)
        assert_clean(out)
        assert "folder" in out and "filename" in out  # only the value is gone
    assert redact(f"/hub/error/503?url={once}") == (
        f"/hub/error/503?url=%2Fservices%2Fopenbis%2F%3Ftoken%3D{SECRET}%26folder%3Da%20b%26filename%3Dy.ipynb"
    )
    assert redact(f"/hub/error/503?url={twice}") == (
        f"/hub/error/503?url=%252Fservices%252Fopenbis%252F%253Ftoken%253D{SECRET}%2526folder%253Da%2520b"
        "%2526filename%253Dy.ipynb"
    )


def test_pat_with_encoded_dollar_anywhere():
    for text in (f"pat {quote(PAT)} end", f"pat {quote(quote(PAT))} end", f"pat {PAT} end"):
        assert redact(text) == f"pat {SECRET} end"


@pytest.mark.parametrize("token", ALL_TOKENS)
def test_bare_openbis_token_without_parameter_name(token):
    for text in (
        f"Session token '{token}' is invalid: user is not logged in.",
        f"request {{'method': 'getSessionInformation', 'params': ['{token}']}}",
        f"/user/alice/files/{token}/x",
        f"{token}",
    ):
        out = redact(text)
        assert_clean(out)
        assert out == text.replace(token, SECRET)


def test_authorization_headers():
    assert redact(f"Authorization: token {HUB_TOKEN}") == f"Authorization: token {SECRET}"
    assert redact(f"authorization: Bearer {HUB_TOKEN}x.y") == f"authorization: Bearer {SECRET}"
    assert redact(f"AUTHORIZATION: TOKEN {HUB_TOKEN}") == f"AUTHORIZATION: TOKEN {SECRET}"
    assert redact(f"headers={{'Authorization': 'token {HUB_TOKEN}', 'Accept': 'x'}}") == (
        f"headers={{'Authorization': 'token {SECRET}', 'Accept': 'x'}}"
    )
    assert redact(f"using token {HUB_TOKEN}ab for alice") == f"using token {SECRET} for alice"


def test_json_and_environment_forms():
    assert redact(f'{{"token": "{HUB_TOKEN}", "user": "alice"}}') == f'{{"token": "{SECRET}", "user": "alice"}}'
    assert redact(f"JUPYTERHUB_API_TOKEN={HUB_TOKEN} x") == f"JUPYTERHUB_API_TOKEN={SECRET} x"
    assert redact("login with password=alice-pw&user=alice") == f"login with password={SECRET}&user=alice"


ORDINARY = [
    "[I 2026-01-01 12:00:00.123 JupyterHub log:192] 200 GET /hub/api/users/alice/server/progress?_=1767268800123"
    + " (alice@127.0.0.1) 12.34ms",
    "[I 2026-01-01 12:00:00.123 JupyterHub log:192] 302 GET /hub/spawn-pending/alice?next=%2Fuser%2Falice%2Flab"
    + "%2Ftree%2Fnotebooks%2Fanalysis.ipynb -> /user/alice/ (alice@127.0.0.1) 3.21ms",
    "12:00:00.123 [ConfigProxy] info: 200 GET /api/routes?inactive_since=2026-01-01T11:50:00.000Z 1.2ms",
    "12:00:00.456 [ConfigProxy] info: Adding route /user/alice -> http://127.0.0.1:54321",
    "[W 2026-01-01 12:00:00.123 JupyterHub base:1234] Failing suspected API request to not-running server: "
    + "/hub/user/alice/api/kernels/5f1b7b0e-1f2a-4c3d-9e8f-0123456789ab",
    "[D 2026-01-01 12:00:00.123 SingleUserLabApp auth:987] Authorization failed for user alice: token is not valid",
    "[I 2026-01-01 12:00:00.123 openbis_hub.service] registered dataset 20261123093000000-7 (permId) sha "
    + "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "[I 2026-01-01 12:00:00.123 JupyterHub app:3000] Adding API token for service openbis, session expired, "
    + "password login disabled",
    "?token=&folder=x",
    "[E 2026-01-01 12:00:00.123 JupyterHub web:1] object at 0x7f3a2b1c4d5e6f708192a3b4c5d6e7f8 "
    + "(timestamp 260101120000123)",
]


@pytest.mark.parametrize("line", ORDINARY)
def test_ordinary_lines_unchanged(line):
    assert redact(line) == line


def test_idempotent():
    line = f"/services/openbis/?token={PAT}&x=1 Authorization: token {HUB_TOKEN} {SESSION}"
    once = redact(line)
    assert redact(once) == once
    assert once == f"/services/openbis/?token={SECRET}&x=1 Authorization: token {SECRET} {SECRET}"


def test_fast_on_ordinary_lines():
    line = ORDINARY[1]
    per_call = min(timeit.repeat(lambda: redact(line), number=2000, repeat=3)) / 2000
    assert per_call < 100e-6  # measured: ~1.5 µs; the bound only catches a catastrophic regex


# ------------------------------------------------------------------ logging


@pytest.fixture
def logger_and_stream():
    logger = logging.getLogger("test_redact_unit")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_filter_redacts_percent_args(logger_and_stream):
    logger, stream = logger_and_stream
    records = []
    logger.handlers[0].addFilter(lambda record: records.append(record) or True)
    logger.info("launch %s for %s", f"/services/openbis/?token={SESSION}&folder=x", "alice")
    assert stream.getvalue() == f"INFO launch /services/openbis/?token={SECRET}&folder=x for alice\n"
    assert records[0].args is None and records[0].msg == f"launch /services/openbis/?token={SECRET}&folder=x for alice"


def test_filter_redacts_exception_text(logger_and_stream):
    logger, stream = logger_and_stream
    try:
        raise RuntimeError(f"Session token '{SESSION}' is invalid: user is not logged in.")
    except RuntimeError:
        logger.exception("openBIS refused %s", PAT)
    out = stream.getvalue()
    assert "Traceback" in out and "RuntimeError: Session token '[secret]' is invalid" in out
    assert_clean(out)


def test_filter_with_bad_args_keeps_line_without_leaking(logger_and_stream):
    logger, stream = logger_and_stream
    logger.info("two %s %s but one arg", f"token={SESSION}")  # noqa: PLE1206 - the missing arg is the point
    assert "two %s %s but one arg" in stream.getvalue()
    assert_clean(stream.getvalue())


def test_filter_from_dictconfig():
    """The factory form a logging dictConfig uses (without reconfiguring this process' logging)."""
    configurator = logging.config.DictConfigurator({"version": 1})
    made = configurator.configure_filter({"()": "openbis_hub.redact.RedactingFilter"})
    assert isinstance(made, RedactingFilter)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "GET /hub/login?token=%s", (PAT,), None)
    assert made.filter(record) is True
    assert record.getMessage() == f"GET /hub/login?token={SECRET}"


def test_install_is_idempotent_and_covers_propagated_records():
    parent = logging.getLogger("test_redact_install")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    parent.addHandler(handler)
    parent.propagate = False
    parent.setLevel(logging.INFO)
    try:
        install(parent)
        install(parent)
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        assert sum(isinstance(f, RedactingFilter) for f in parent.filters) == 1
        logging.getLogger("test_redact_install.child").warning("session %s", SESSION)
        assert stream.getvalue() == f"session {SECRET}\n"
    finally:
        parent.removeHandler(handler)
        parent.filters.clear()


def test_install_defaults_to_root():
    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)
    try:
        install()
        install()
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        root.removeHandler(handler)
        root.filters[:] = [f for f in root.filters if not isinstance(f, RedactingFilter)]


# ------------------------------------------------------------------ the process wrapper


def _wrapper(code: str, **kwargs) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "openbis_hub.redact", "--", sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_wrapper_redacts_both_streams_and_returns_exit_code(tmp_path):
    code = f"""
        import os, sys
        print("out /services/openbis/?token={SESSION}&folder=x")
        print("err {PAT}", file=sys.stderr)
        print("cwd", os.getcwd(), os.environ["REDACT_TEST"])
        sys.stdout.flush()
        sys.stdout.buffer.write(b"bin \\xff\\xfe {SESSION} partial")
        sys.exit(3)
    """
    env = {"REDACT_TEST": "same-env", "PATH": "/usr/bin:/bin"}
    proc = _wrapper(code, cwd=tmp_path, env=env)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3
    out, err = out.decode(), err.decode()
    assert out == (
        f"out /services/openbis/?token={SECRET}&folder=x\ncwd {tmp_path.resolve()} same-env\n"
        f"bin \ufffd\ufffd {SECRET} partial"
    )
    assert err == f"err {SECRET}\n"


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_wrapper_forwards_sigterm():
    code = f"""
        import signal, sys, time
        def bye(signum, frame):
            print("got SIGTERM with token={SESSION}", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print("ready", flush=True)
        time.sleep(30)
        sys.exit(1)
    """
    proc = _wrapper(code)
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out.decode(), err) == (0, f"got SIGTERM with token={SECRET}\n", b"")


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_wrapper_reports_death_by_signal():
    proc = _wrapper("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGKILL
