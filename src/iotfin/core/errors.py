"""Typed domain errors, mapped to HTTP problem+json, MQTT reason codes and CLI exit codes at the edges."""

from __future__ import annotations


class IotfinError(Exception):
    """Base of every error the platform raises on purpose."""

    #: CLI exit code for this family of errors (see docs/operations.md)
    exit_code: int = 1
    #: HTTP status at the API edge
    http_status: int = 500
    #: short machine-readable slug, used in problem+json `type`
    code: str = "error"

    def problem_extra(self) -> dict[str, object]:
        """Extra members for the problem+json body (RFC 9457 extensions)."""
        return {}


class ConfigError(IotfinError):
    """A setting is missing or invalid; the message names it."""

    exit_code = 78  # EX_CONFIG
    http_status = 500
    code = "config"


class ValidationError(IotfinError):
    """Input that breaks the contract: rejected with a reason, never silently dropped. `field` names
    the input at fault (the problem body's `field` member), when there is one."""

    exit_code = 65  # EX_DATAERR
    http_status = 422
    code = "validation"

    def __init__(self, message: str = "", *, field: str | None = None):
        super().__init__(message)
        self.field = field

    def problem_extra(self) -> dict[str, object]:
        return {"field": self.field} if self.field else {}


class Unauthorized(IotfinError):
    """Missing, unknown, expired or revoked credentials."""

    exit_code = 77  # EX_NOPERM
    http_status = 401
    code = "unauthorized"


class PayloadTooLarge(IotfinError):
    exit_code = 65
    http_status = 413
    code = "payload-too-large"


class NotFound(IotfinError):
    exit_code = 66  # EX_NOINPUT
    http_status = 404
    code = "not-found"


class Conflict(IotfinError):
    exit_code = 75  # EX_TEMPFAIL
    http_status = 409
    code = "conflict"


class ServiceUnavailable(IotfinError):
    """A dependency (database, broker) cannot be reached."""

    exit_code = 69  # EX_UNAVAILABLE
    http_status = 503
    code = "unavailable"


class Forbidden(IotfinError):
    """Authenticated, but the credentials do not carry the scope or role the action needs."""

    exit_code = 77  # EX_NOPERM
    http_status = 403
    code = "forbidden"


class TooManyRequests(IotfinError):
    """A client went over its rate limit; `retry_after` says when a request will be accepted again."""

    exit_code = 75  # EX_TEMPFAIL
    http_status = 429
    code = "rate-limited"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after

    def problem_extra(self) -> dict[str, object]:
        return {"retry_after": max(1, round(self.retry_after + 0.4999))}


class MalformedPayload(ValueError):
    """A device payload cannot be read at all (not JSON, wrong shape, too large): quarantined with its
    reason. Here, not in ingest, because the devices context raises it too (an authentic signed message
    whose inner payload is not JSON)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
