"""Folder and notebook names: lengths in bytes of UTF-8, as filesystems count them, and the safety checks."""

from __future__ import annotations

import pytest

from openbis_hub.errors import BadRequest
from openbis_hub.service.paths import (
    MAX_FOLDER_BYTES,
    MAX_NAME_BYTES,
    MAX_NOTEBOOK_NAME_BYTES,
    UnsafePath,
    clean_folder,
    clean_notebook_name,
    join,
    numbered,
)

SUFFIX = ".ipynb"


def _name(total_bytes: int, char: str = "a") -> str:
    """A notebook name of exactly ``total_bytes`` bytes, ``char`` repeated before '.ipynb'."""
    width = len(char.encode())
    stem_bytes = total_bytes - len(SUFFIX)
    assert stem_bytes % width == 0
    return char * (stem_bytes // width) + SUFFIX


def _message(call, *args) -> str:
    with pytest.raises(UnsafePath) as caught:
        call(*args)
    assert isinstance(caught.value, BadRequest) and caught.value.status == 400
    return caught.value.message


def test_limits():
    assert (MAX_NAME_BYTES, MAX_FOLDER_BYTES) == (255, 4096)


def test_notebook_names_leave_room_for_jupyters_checkpoint_copy():
    """Jupyter saves ``<stem>-checkpoint.ipynb`` beside the notebook: that name must fit in 255 bytes too."""
    assert MAX_NOTEBOOK_NAME_BYTES == 255 - len("-checkpoint") == 244
    assert clean_notebook_name(_name(244)) == _name(244)
    message = _message(clean_notebook_name, _name(245))
    assert "too long" in message and "245 bytes" in message and "244" in message
    assert "Choose a shorter name." in message


@pytest.mark.parametrize("char", ["ä", "€", "😀"], ids=["2 bytes", "3 bytes", "4 bytes"])
def test_multibyte_notebook_name_at_the_boundary(char):
    width = len(char.encode())
    stem = (MAX_NOTEBOOK_NAME_BYTES - len(SUFFIX)) // width
    fits = char * stem + SUFFIX
    assert len(fits.encode()) <= MAX_NOTEBOOK_NAME_BYTES
    assert clean_notebook_name(fits) == fits
    # one more character is too many bytes, though far fewer characters than the limit
    over = char * (stem + 1) + SUFFIX
    assert len(over) < MAX_NOTEBOOK_NAME_BYTES < len(over.encode())
    assert "too long" in _message(clean_notebook_name, over)


def test_128_umlauts_are_too_long():
    name = "ä" * 128 + SUFFIX  # 134 characters, 262 bytes
    message = _message(clean_notebook_name, name)
    assert "262 bytes" in message and "'ä'" in message and "2 bytes" in message


def test_folder_component_255_bytes_ok_256_refused():
    ok = "a" * 255
    assert clean_folder(f"x/{ok}/y") == f"x/{ok}/y"
    assert clean_folder("ä" * 127 + "a") == "ä" * 127 + "a"  # 255 bytes
    for over in ("a" * 256, "ä" * 128, "x/" + "é" * 128 + "/y"):
        message = _message(clean_folder, over)
        assert message.startswith("A name in the folder is too long: 256 bytes, at most 255"), message


def test_whole_folder_at_most_4096_bytes():
    parts = ["a" * 255] * 15 + ["a" * 254]  # 15 * 255 + 254 + 15 slashes = 4094 bytes
    rest = MAX_FOLDER_BYTES - (len("/".join(parts)) + 1)
    assert 0 < rest <= 255
    exact = "/".join(parts + ["b" * rest])
    assert len(exact.encode()) == 4096
    assert clean_folder(exact) == exact
    over = exact + "b"
    message = _message(clean_folder, over)
    assert message.startswith("The folder is too long: 4097 bytes, at most 4096") and "shorter folder" in message
    # in bytes: 2-byte letters reach the limit with half as many characters
    umlauts = "/".join(["ä" * 127] * 17)  # 17 * 254 + 16 = 4334 bytes, 2175 characters
    assert "4334 bytes" in _message(clean_folder, umlauts)


def test_folder_length_is_of_the_cleaned_folder():
    assert clean_folder("  a//b/  ") == "a/b"
    assert clean_folder("a" + "/" * 5000 + "b") == "a/b"


def test_numbered_fits_or_refuses():
    assert numbered("n.ipynb", 1) == "n.ipynb"
    assert numbered("n.ipynb", 2) == "n 2.ipynb"
    assert numbered("n.ipynb", 10) == "n 10.ipynb"
    room = _name(242)  # ' 2' brings it to the limit, 244
    assert numbered(room, 2) == room[: -len(SUFFIX)] + " 2" + SUFFIX
    assert len(numbered(room, 2).encode()) == MAX_NOTEBOOK_NAME_BYTES
    message = _message(numbered, room, 10)  # ' 10' would be 245 bytes
    assert "taken" in message and "245 bytes" in message and "Choose a shorter name." in message
    full = _name(244)
    assert numbered(full, 1) == full  # the name itself, when free, is fine
    assert "taken" in _message(numbered, full, 2)
    umlauts = "ä" * 118 + SUFFIX  # 242 bytes
    assert "too long to number" in _message(numbered, umlauts, 10)


def test_numbered_never_returns_more_than_the_limit():
    for total in range(230, 245):
        name = _name(total)
        for n in range(1, 1200, 7):
            try:
                result = numbered(name, n)
            except UnsafePath:
                assert len(f"{name[: -len(SUFFIX)]} {n}{SUFFIX}".encode()) > MAX_NOTEBOOK_NAME_BYTES
            else:
                assert len(result.encode()) <= MAX_NOTEBOOK_NAME_BYTES


def test_join():
    assert join("", "n.ipynb") == "n.ipynb"
    assert join("a/b", "n.ipynb") == "a/b/n.ipynb"


# the checks that were there before the byte counts


@pytest.mark.parametrize(
    "folder, words",
    [
        ("../etc", ".."),
        ("a/../../etc", ".."),
        ("a/./b", "'.'"),
        (".pybis", "hidden"),
        ("work/.ssh", "hidden"),
        ("/etc", "absolute"),
        ("~/x", "absolute"),
        ("C:/x", "absolute"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("a/b\x07", "control characters"),
        ("a/b\nc", "control characters"),
        ("a/ b", "spaces"),
    ],
)
def test_folder_checks_still_hold(folder, words):
    assert words.lower() in _message(clean_folder, folder).lower()


@pytest.mark.parametrize(
    "filename, words",
    [
        ("", "missing"),
        (None, "missing"),
        ("a/n.ipynb", "'/'"),
        ("a\\n.ipynb", "'\\'"),
        ("n\x00.ipynb", "NUL"),
        ("n.txt", ".ipynb"),
        (".ipynb", ".ipynb"),
        (".hidden.ipynb", "hidden"),
        ("n\x1b.ipynb", "control characters"),
        (" n.ipynb", "spaces"),
    ],
)
def test_notebook_name_checks_still_hold(filename, words):
    assert words.lower() in _message(clean_notebook_name, filename).lower()


@pytest.mark.parametrize("folder", [None, "", "  ", "a", "a/", "a//b", "a/b c/ä", "x" * 255])
def test_good_folders_pass(folder):
    assert clean_folder(folder) == "/".join(p for p in (folder or "").strip().split("/") if p)


def test_messages_are_short_plain_sentences():
    """They are shown in the ELN's alert(): no echo of a whole long name, one or two sentences."""
    long_hidden = "." + "x" * 5000
    for call, arg in [
        (clean_folder, long_hidden),
        (clean_notebook_name, long_hidden + SUFFIX),
        (clean_notebook_name, _name(300)),
        (clean_folder, "x" * 5000),
        (numbered, _name(255)),
    ]:
        args = (arg, 2) if call is numbered else (arg,)
        message = _message(call, *args)
        assert len(message) < 220, message
        assert message.endswith(".") and '"' not in message
