"""The ELN's query, as the ELN builds it and Chromium sends it (reference §4.2: plain concatenation)."""

from __future__ import annotations

import pytest

from openbis_hub.errors import BadRequest
from openbis_hub.service.eln_query import HASH_MESSAGE, decode_percent, parse_eln_query


def as_browser_sends(token: str, folder: str, name: str, test: bool) -> str:
    """``JupyterUtil.js``'s concatenation, then what Chromium percent-encodes in a query and where it cuts."""
    raw = f"token={token}&folder={folder}&filename={name}.ipynb&test={test}"
    raw = raw.split("#", 1)[0]
    out = []
    for ch in raw:
        if ch == " " or ch in "\"<>'" or ord(ch) < 0x20 or ord(ch) > 0x7E:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


@pytest.mark.parametrize(
    "folder, name",
    [
        ("R&D", "a&b"),
        ("100%", "yield 5%"),
        ("rates", "50%ab done"),
        ("C++", "a+b"),
        ("x=y", "k=v&test=True"),
        ("Ünïcödé 😀", "日本語 ノート"),
        ("my analysis", "first notebook"),
        ("a%20b", "literal %41 escape"),
        ("", "top"),
    ],
)
def test_every_typed_name_arrives_intact(folder, name):
    query = parse_eln_query(as_browser_sends("alice-26x0ABC", folder, name, True))
    expected_folder, expected_name = folder, name + ".ipynb"
    if "%20" in folder or "%41" in name:
        # the browser leaves a typed escape alone, so it decodes like the browser's own: indistinguishable
        expected_folder, expected_name = decode_percent(folder), decode_percent(name) + ".ipynb"
    assert (query.token, query.folder, query.filename, query.test) == (
        "alice-26x0ABC",
        expected_folder,
        expected_name,
        "True",
    )


@pytest.mark.parametrize("folder, name", [("run#1", "nb"), ("run", "nb#2")])
def test_a_hash_gets_a_message_that_names_it(folder, name):
    with pytest.raises(BadRequest) as caught:
        parse_eln_query(as_browser_sends("t", folder, name, True))
    assert caught.value.message == HASH_MESSAGE
    assert "'#'" in HASH_MESSAGE and '"' not in HASH_MESSAGE  # reads well inside alert(JSON.stringify(...))


def test_percent_escapes_decode_only_as_valid_utf8():
    assert decode_percent("%20%C3%A4") == " ä"
    assert decode_percent("50%ab") == "50%ab"
    assert decode_percent("%E6%97%A5%E6") == "日%E6"
    assert decode_percent("%F0%9F%98%80") == "😀"
    assert decode_percent("100%") == "100%"
    assert decode_percent("a+b") == "a+b"
    assert decode_percent("%C0%AF") == "%C0%AF"  # an overlong '/' is no '/'


def test_other_clients_query_in_another_order():
    query = parse_eln_query("test=False&filename=n.ipynb&folder=a%20b&token=t")
    assert (query.token, query.folder, query.filename, query.test) == ("t", "a b", "n.ipynb", "False")
