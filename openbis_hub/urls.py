"""URL rules shared by the hub, the launch service and the single-user side (no JupyterHub imports)."""

from __future__ import annotations

from urllib.parse import urlsplit


def origin_of(url: str) -> str:
    """``https://host[:port]`` of a URL, or '' when it has no scheme and host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def check_openbis_url(url: str, what: str = "The openBIS URL") -> str:
    """``url`` without a trailing slash; ValueError unless it is an http(s) URL with a host."""
    url = (url or "").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"{what} must start with https://, got {url!r}")
    return url
