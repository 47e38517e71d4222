"""The import graph reads top-down: each part imports only the parts below it.

Read from the source (ast), so nothing is imported or started.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = {
    "openbis_hub": REPO / "openbis_hub",
    "openbis_hub_singleuser": REPO / "singleuser" / "openbis_hub_singleuser",
    "openbis_hub_dev": REPO / "dev" / "openbis_hub_dev",
}

# part -> the parts it may import (parts are top-level modules or subpackages of a package)
ALLOWED = {
    "openbis_hub._version": set(),
    "openbis_hub.urls": set(),
    "openbis_hub.errors": set(),
    "openbis_hub.redact": set(),
    "openbis_hub.scopes": set(),
    "openbis_hub.openbis": {"openbis_hub.errors", "openbis_hub.urls"},
    "openbis_hub.pending": {"openbis_hub.scopes"},
    "openbis_hub.eln_template": {"openbis_hub.errors"},
    "openbis_hub.proxy_errors": set(),
    "openbis_hub.auth": {
        "openbis_hub.pending",
        "openbis_hub.proxy_errors",
        "openbis_hub.openbis",
        "openbis_hub.errors",
        "openbis_hub.scopes",
        "openbis_hub.urls",
    },
    "openbis_hub.service": {
        "openbis_hub.eln_template",
        "openbis_hub.openbis",
        "openbis_hub.errors",
        "openbis_hub.redact",
        "openbis_hub.urls",
        "openbis_hub._version",
    },
    "openbis_hub.deployment": {
        "openbis_hub.service",
        "openbis_hub.scopes",
        "openbis_hub.urls",
        "openbis_hub._version",
    },
    "openbis_hub.cli": {"openbis_hub.service"},
    "openbis_hub": {"openbis_hub._version"},
    # the single-user side uses the shared modules of the hub distribution, never the hub's own parts
    "openbis_hub_singleuser": {
        "openbis_hub.eln_template",
        "openbis_hub.openbis",
        "openbis_hub.errors",
        "openbis_hub.redact",
        "openbis_hub.urls",
        "openbis_hub._version",
    },
    "openbis_hub_dev": {
        "openbis_hub.eln_template",
        "openbis_hub.openbis",
        "openbis_hub.urls",
        "openbis_hub.redact",
        "openbis_hub._version",
    },
}


def part_of(module: str) -> str:
    """``openbis_hub.service.hub`` -> ``openbis_hub.service``; other packages are one part each."""
    top, _, rest = module.partition(".")
    if top != "openbis_hub":
        return top
    return f"openbis_hub.{rest.split('.')[0]}" if rest else "openbis_hub"


def modules():
    for package, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root).with_suffix("")
            parts = [package, *relative.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imported(module: str, path: Path) -> set[str]:
    """The project modules ``module`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from openbis_hub import redact` imports the module openbis_hub.redact
            found |= {f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in KNOWN}
    return {name for name in found if name.split(".")[0] in ROOTS}


KNOWN = {name for name, _ in modules()}


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_go_down_only(module, path):
    own = part_of(module)
    assert own in ALLOWED, f"{module} is in no known part: add it to ALLOWED"
    for target in imported(module, path):
        other = part_of(target)
        if other == own or (other == "openbis_hub" and target == "openbis_hub"):
            continue
        assert other in ALLOWED[own], f"{module} imports {target}: {own} may import only {sorted(ALLOWED[own])}"


def test_the_check_sees_imports():
    # the graph is not empty: the check would notice an import that breaks the layering
    assert "openbis_hub.openbis" in imported("openbis_hub.auth", ROOTS["openbis_hub"] / "auth.py")
    assert "openbis_hub.service.app" in imported(
        "openbis_hub.deployment.hub", ROOTS["openbis_hub"] / "deployment" / "hub.py"
    )


def test_no_test_module_imports_another():
    """Shared test equipment lives in helper modules (hub.py, docker_stack.py, ...), never in a test module."""
    offenders = []
    for path in [*(REPO / "tests").rglob("*.py"), *(REPO / "benchmarks").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[-1].startswith("test_")]
    assert offenders == []
