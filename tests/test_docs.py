"""The documentation site builds with warnings as errors, and its generated
reference pages cover every setting and every endpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytest.importorskip("mkdocs", reason="mkdocs is in the test extra: pip install -e './dev[test]'")


def test_mkdocs_build_strict(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    for page in (
        "index.html",
        "tutorial/index.html",
        "architecture/index.html",
        "performance/index.html",
        "reference/configuration/index.html",
        "reference/http-api/index.html",
        "howto/eln-profile/index.html",
        "deploy/index.html",
        "notebook/index.html",
    ):
        assert (tmp_path / "site" / page).is_file(), page
    assert not (tmp_path / "site" / "hooks.py").exists()


def test_reference_pages_cover_the_code():
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import gen_config_reference as gen
    finally:
        sys.path.pop(0)
    config = gen.configuration_page()
    for cls, _, _ in gen.configurables():
        for name in cls.class_own_traits(config=True):
            assert f"### `{cls.__name__}.{name}`" in config
    assert "(no help string)" not in config, "every setting needs a help string"

    from openbis_hub.service.openapi import openapi_document

    api = gen.http_api_page()
    for path, methods in openapi_document()["paths"].items():
        for method in methods:
            assert f"## `{method.upper()} {path}`" in api


def test_tutorial_images_exist():
    text = (REPO / "docs" / "tutorial.md").read_text()
    import re

    images = re.findall(r"\]\((images/[^)]+)\)", text)
    assert images
    for image in images:
        assert (REPO / "docs" / image).is_file(), (
            f"{image}: make it with OPENBIS_HUB_SCREENSHOTS=1 pytest tests/test_demo.py"
        )
