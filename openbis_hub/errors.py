"""Errors with a message that is safe to show to users and to log.

Every error carries the HTTP ``status`` a handler should answer with and a
``message`` that never contains a token.
"""


class OpenBISHubError(Exception):
    """Base class: ``message`` is safe to show, ``status`` is the HTTP status to answer."""

    status = 500

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(OpenBISHubError):
    """Missing or malformed parameters, an unsafe path or a body that is not a notebook."""

    status = 400


class Unauthorized(OpenBISHubError):
    """No credentials came with the request."""

    status = 401


class PayloadTooLarge(OpenBISHubError):
    status = 413


class OpenBISError(OpenBISHubError):
    """openBIS refused a request or could not be asked."""

    status = 502


class InvalidToken(OpenBISError):
    """The token is unknown to openBIS, logged out, malformed or empty."""

    status = 401


class SessionExpired(InvalidToken):
    """The openBIS session timed out; the user has to log in to openBIS again."""


class PersonalAccessTokenNotValid(InvalidToken):
    """The personal access token is not yet or no longer valid."""


class AccessDenied(OpenBISError):
    """openBIS refused: the user lacks the permission (AuthorizationFailureException)."""

    status = 403


class NotFound(OpenBISError):
    """openBIS does not have the object (any more), or does not show it to this user."""

    status = 404


class LoginFailed(OpenBISError):
    """openBIS did not accept the user name and password."""

    status = 401


class OpenBISUnreachable(OpenBISError):
    """openBIS did not answer (down, wrong URL, TLS failure or timeout)."""

    status = 502


class UnexpectedAnswer(OpenBISError):
    """openBIS answered something that is not what its API documents."""

    status = 502


class HubAPIError(OpenBISHubError):
    """The JupyterHub REST API or a single-user server refused a request."""

    status = 502


class ServerUnreachable(HubAPIError):
    """A user's server the hub lists did not answer (restarting, or gone without the hub knowing yet)."""
