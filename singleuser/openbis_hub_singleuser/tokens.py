"""The openBIS token file pybis reads, and the CA bundle kernels trust.

pybis' ``Openbis()`` (no arguments) takes the URL from ``OPENBIS_URL`` and the
token from ``~/.pybis/<hostname>.token``: the host name without scheme or
port, the bare token without a newline.  These helpers write that file
atomically, with the directory at 0700 and the file at 0600, so a kernel never
reads a half-written token and no other local user can read it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit


def openbis_hostname(openbis_url: str) -> str:
    """The host part of an openBIS URL, as pybis names its token file."""
    hostname = urlsplit(openbis_url).hostname
    if not hostname:
        raise ValueError(f"Not an openBIS URL (no host name): {openbis_url!r}")
    return hostname


def default_token_dir() -> Path:
    return Path(os.path.expanduser("~")) / ".pybis"


def token_path(openbis_url: str, token_dir: str | os.PathLike | None = None) -> Path:
    directory = Path(token_dir) if token_dir else default_token_dir()
    return directory / f"{openbis_hostname(openbis_url)}.token"


def _ensure_private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_token_file(openbis_url: str, token: str, token_dir: str | os.PathLike | None = None) -> Path:
    """Write ``token`` where pybis looks for it; returns the file's path."""
    if not token or "\n" in token or "\r" in token:
        raise ValueError("refusing to write an empty or multi-line openBIS token")
    path = token_path(openbis_url, token_dir)
    _ensure_private_dir(path.parent)
    _atomic_write(path, token.encode("utf-8"), 0o600)
    return path


def read_token_file(openbis_url: str, token_dir: str | os.PathLike | None = None) -> str | None:
    """The token pybis would use, or None when there is no (readable) token file."""
    try:
        token = token_path(openbis_url, token_dir).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return token or None


def write_ca_bundle(ca_file: str, dest: str | os.PathLike, base_bundle: str | None = None) -> Path:
    """A CA bundle trusting ``ca_file`` *and* the usual public CAs.

    Pointing ``REQUESTS_CA_BUNDLE`` at the openBIS CA alone would make every
    other https request in a kernel (pip, public APIs) fail, so the openBIS CA
    is appended to ``base_bundle`` (an existing ``REQUESTS_CA_BUNDLE``, else
    certifi's bundle when it is installed).
    """
    parts = []
    if base_bundle is None:
        try:
            import certifi

            base_bundle = certifi.where()
        except ImportError:  # pragma: no cover - requests depends on certifi
            base_bundle = None
    if base_bundle and os.path.isfile(base_bundle) and os.path.abspath(base_bundle) != os.path.abspath(dest):
        parts.append(Path(base_bundle).read_bytes())
    parts.append(Path(ca_file).read_bytes())
    dest = Path(dest)
    _ensure_private_dir(dest.parent)
    _atomic_write(dest, b"\n".join(p.rstrip(b"\n") + b"\n" for p in parts), 0o644)
    return dest
