"""Domain errors; the gateway maps each to one HTTP status and the error envelope."""


class SparkpilotError(Exception):
    """Base class: `code` is a stable machine-readable string."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class Forbidden(SparkpilotError):
    """The caller is known but not allowed to do this (admin-only operations)."""

    status_code = 403
    code = "forbidden"


class NotFound(SparkpilotError):
    """The id is unknown (or belongs to another user)."""

    status_code = 404
    code = "not_found"


class Conflict(SparkpilotError):
    """The request does not fit the resource's current state."""

    status_code = 409
    code = "conflict"


class InvalidInput(SparkpilotError):
    """The request is well-formed JSON but not acceptable."""

    status_code = 422
    code = "invalid_input"


class QuotaExceeded(SparkpilotError):
    """The user already has as much as this server allows (HTTP 429)."""

    status_code = 429


class Unavailable(SparkpilotError):
    """A dependency (Redis, database, inference) is unreachable."""

    status_code = 503
    code = "unavailable"
