"""Runs last: no openBIS token used in this session reached a log line."""

from conftest import ISSUED_TOKENS


def test_no_token_in_any_log(hub, slow_hub, down_hub):
    assert len(ISSUED_TOKENS) > 5  # the tests before this one did log in
    logs = {h.log_path.name + str(i): h.log_text() for i, h in enumerate([hub, slow_hub, down_hub])}
    assert all(logs.values())
    for name, text in logs.items():
        assert "/hub/login" in text or "openBIS" in text
        for token in ISSUED_TOKENS:
            assert token not in text, f"a token appears in {name}"
