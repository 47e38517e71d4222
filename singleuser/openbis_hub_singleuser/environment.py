"""What a save records so the analysis can be run again: the kernel's environment and the notebook's state.

The packages come from the kernel's own interpreter (``pip freeze`` run by
the kernel the notebook is connected to), not from the notebook server's:
the two differ whenever a kernel runs in another environment, or the user
ran ``%pip install``.  Without a running kernel, the interpreter of the
notebook's kernelspec is asked instead.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import sys

MARKER = "\x00openbis-hub-environment:"
# runs silently in the user's kernel; prints one marked line of JSON
KERNEL_CODE = r"""
def _openbis_hub_environment():
    import json, platform, subprocess, sys
    try:
        freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True,
                                text=True, timeout=120).stdout
    except Exception:
        freeze = ""
    if not freeze.strip():
        from importlib import metadata
        names = {f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"]}
        freeze = "".join(n + "\n" for n in sorted(names, key=str.lower))
    print(MARKER + json.dumps({"python": platform.python_version(),
                               "implementation": platform.python_implementation(),
                               "executable": sys.executable, "platform": platform.platform(),
                               "requirements": freeze}))
_openbis_hub_environment()
del _openbis_hub_environment
""".replace("MARKER", repr(MARKER))

KERNEL_TIMEOUT = 150.0


def hub_version() -> str:
    from openbis_hub import __version__

    return __version__


def image() -> str | None:
    """The container image this server runs in, as the spawners say it (Docker, Kubernetes)."""
    return os.environ.get("JUPYTER_IMAGE_SPEC") or os.environ.get("JUPYTER_IMAGE") or None


def parse_kernel_output(text: str) -> dict | None:
    for line in text.splitlines():
        if line.startswith(MARKER):
            try:
                found = json.loads(line[len(MARKER) :])
            except ValueError:
                return None
            return found if isinstance(found, dict) and isinstance(found.get("requirements"), str) else None
    return None


async def from_kernel(kernel_manager, kernel_id: str, timeout: float = KERNEL_TIMEOUT) -> dict | None:
    """Run :data:`KERNEL_CODE` silently in a running kernel; None if it does not answer."""
    try:
        km = kernel_manager.get_kernel(kernel_id)
    except KeyError:
        return None
    client = km.client()
    client.start_channels()
    out: list[str] = []

    def hook(msg):
        if msg.get("msg_type") == "stream":
            out.append(msg["content"].get("text", ""))

    try:
        await client.wait_for_ready(timeout=30)
        await client.execute_interactive(
            KERNEL_CODE, silent=True, store_history=False, allow_stdin=False, timeout=timeout, output_hook=hook
        )
    except Exception:
        return None
    finally:
        client.stop_channels()
    return parse_kernel_output("".join(out))


async def from_interpreter(python: str, timeout: float = KERNEL_TIMEOUT) -> dict | None:
    """The same facts from an interpreter that is not running as a kernel."""
    try:
        proc = await asyncio.create_subprocess_exec(
            python, "-c", KERNEL_CODE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        stdout, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    return parse_kernel_output(stdout.decode("utf-8", "replace"))


def kernelspec_python(kernel_spec_manager, name: str | None) -> str | None:
    try:
        spec = kernel_spec_manager.get_kernel_spec(name or "python3")
    except Exception:
        return None
    argv = list(getattr(spec, "argv", []) or [])
    if not argv or getattr(spec, "language", "python").lower() != "python":
        return None
    # jupyter_client starts "python" / "python3" as the server's own interpreter
    return sys.executable if argv[0] in ("python", "python3", "{python}") else argv[0]


def execution_state(nb: dict, edited: list[int] | None = None) -> dict:
    """How the saved outputs came about: cells never run, run out of order, failed, edited since run."""
    code_cells = [(i, c) for i, c in enumerate(nb.get("cells") or []) if c.get("cell_type") == "code"]
    never_run, errors, counts = [], [], []
    for i, cell in code_cells:
        count = cell.get("execution_count")
        source = cell.get("source")
        source = "".join(source) if isinstance(source, list) else (source or "")
        if count is None:
            if source.strip():
                never_run.append(i)
        else:
            counts.append((i, count))
        if any(o.get("output_type") == "error" for o in cell.get("outputs") or []):
            errors.append(i)
    out_of_order = [i for (i, c), (_, prev) in zip(counts[1:], counts[:-1], strict=False) if c <= prev]
    edited = sorted({int(i) for i in (edited or []) if isinstance(i, int) and 0 <= i < len(nb.get("cells") or [])})
    return {
        "code_cells": len(code_cells),
        "executed": len(counts),
        "never_run": never_run,
        "out_of_order": out_of_order,
        "errors": errors,
        "edited_since_run": edited,
        "in_order_top_to_bottom": not (never_run or out_of_order or errors or edited)
        and [c for _, c in counts] == list(range(1, len(counts) + 1)),
    }


def record(env: dict | None, *, kernel_name: str | None, source: str, state: dict, path: str) -> dict:
    """The environment record saved with the dataset (``openbis-hub-environment.json``)."""
    python = None
    requirements = ""
    if env:
        requirements = env.get("requirements", "")
        python = {k: env.get(k) for k in ("python", "implementation", "executable", "platform")}
    return {
        "format": "openbis-hub-environment/1",
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "notebook": path,
        "openbis_hub_version": hub_version(),
        "image": image(),
        "kernel": {"name": kernel_name, "source": source},
        "python": python,
        "requirements_sha256": hashlib.sha256(requirements.encode()).hexdigest() if requirements else None,
        "packages": len([line for line in requirements.splitlines() if line.strip()]),
        "execution": state,
    }


def files(env: dict | None, rec: dict) -> dict[str, str]:
    """``{file name: text}`` attached to the dataset next to the notebook."""
    out = {"openbis-hub-environment.json": json.dumps(rec, indent=1) + "\n"}
    if env and env.get("requirements"):
        out["requirements.txt"] = env["requirements"]
    if env and env.get("python"):
        out["runtime.txt"] = f"python-{env['python']}\n"
    return out
