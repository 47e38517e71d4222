"""The launch service (hub-managed, at ``/services/openbis/``)."""

from .app import OpenBISService, main

__all__ = ["OpenBISService", "main"]
