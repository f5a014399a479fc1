"""Every refusal memflask answers, in one catalogue (as werkzeug/exceptions.py lists HTTP's).

A refusal is an exception class that carries its HTTP status, its error code and any
headers as class attributes; raise sites name the class, never a bare code string.
`Refusal.body` is the JSON error body, the same for a single request and inside `/batch`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class Refusal(Exception):
    """A request memflask refuses: an HTTP status, a short error code and a message."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    headers: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    @property
    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


# -- 400: bad input; nothing changed ---------------------------------------------------


class ValidationError(Refusal, ValueError):
    """Bad input: a parameter is missing, malformed or out of range."""


class MissingParameter(ValidationError):
    code = "missing_parameter"


class DuplicateParameter(ValidationError):
    code = "duplicate_parameter"


class TooManyParameters(ValidationError):
    code = "too_many_parameters"


class InvalidParameter(ValidationError):
    """A JSON parameter that is neither a string nor an integer."""

    code = "invalid_parameter"


class InvalidEncoding(ValidationError):
    code = "invalid_encoding"


class InvalidKey(ValidationError):
    code = "invalid_key"


class KeyTooLong(ValidationError):
    code = "key_too_long"


class TooManyKeys(ValidationError):
    code = "too_many_keys"


class InvalidExpire(ValidationError):
    code = "invalid_expire"


class ConflictingExpiry(ValidationError):
    code = "conflicting_expiry"


class NotAnInteger(ValidationError):
    code = "not_an_integer"


class InvalidDuration(ValidationError):
    """A number of seconds (lease, recache, stale) that is not an integer in its range."""

    code = "invalid_duration"


class InvalidLease(ValidationError):
    """A write's `lease` that cannot be a lease token (a well-formed unknown one is a 412)."""

    code = "invalid_lease"


class Overflow(ValidationError):
    """An increment or decrement whose result leaves the signed 64-bit range."""

    code = "overflow"


class CompareMismatch(ValidationError):
    code = "compare_mismatch"


class InvalidCursor(ValidationError):
    """A /keys cursor the store did not give, or one whose scan it has let go."""

    code = "invalid_cursor"


class InvalidLimit(ValidationError):
    code = "invalid_limit"


class InvalidJson(ValidationError):
    code = "invalid_json"


class InvalidBody(ValidationError):
    """A JSON body of a kind the verb does not take (a list where an object is needed)."""

    code = "invalid_body"


class InvalidBatch(ValidationError):
    code = "invalid_batch"


class HeaderTooLong(ValidationError):
    """An If-Match or If-None-Match longer than memflask parses (headers.py says why)."""

    code = "header_too_long"


# -- access ------------------------------------------------------------------------------


class Unauthorized(Refusal):
    status = 401
    code = "unauthorized"
    headers = (("WWW-Authenticate", "Bearer realm=memflask"),)


class Forbidden(Refusal):
    """A Host that is not allowed, or a browser write from another site."""

    status = 403
    code = "forbidden"


class ForbiddenHost(Forbidden):
    pass


class CrossSite(Forbidden):
    pass


class OutOfScope(Forbidden):
    """A scoped token's request outside its key prefix or its rights."""

    code = "out_of_scope"


# -- the item or the verb ------------------------------------------------------------------


class NotFound(Refusal):
    status = 404
    code = "not_found"


class UnknownVerb(Refusal):
    status = 404
    code = "unknown_verb"


class MethodNotAllowed(Refusal):
    """HEAD on a verb that writes: HEAD must be safe."""

    status = 405
    code = "method_not_allowed"
    headers = (("Allow", "GET, POST"),)


class Exists(Refusal):
    status = 409
    code = "exists"


class PreconditionFailed(Refusal):
    status = 412
    code = "precondition_failed"


class ValueTooLarge(Refusal):
    status = 413
    code = "value_too_large"


class RequestTooLarge(Refusal):
    """A body over MAX_CONTENT_LENGTH (the error code is Werkzeug's own for it)."""

    status = 413
    code = "request_entity_too_large"


class AnswerTooLarge(Refusal):
    """An answer that would pass MAX_ANSWER_BYTES: an /mget refused whole, or a /batch
    result left out (its command ran), or a /batch whose results cannot all fit."""

    status = 413
    code = "answer_too_large"


class ScanBudgetExceeded(Refusal):
    """A /batch whose scans would examine more keys than MAX_SCAN_KEYS allows; nothing ran."""

    status = 413
    code = "scan_budget_exceeded"


class UnsupportedMediaType(Refusal):
    status = 415
    code = "unsupported_media_type"


class Unavailable(Refusal):
    """The store (a Redis server) did not answer in time."""

    status = 503
    code = "store_unavailable"


# Refusals any request for a verb may get, whatever the verb: the OpenAPI document lists
# them on every operation.
COMMON_REFUSALS: tuple[type[Refusal], ...] = (
    ValidationError,
    Unauthorized,
    Forbidden,
    RequestTooLarge,
    UnsupportedMediaType,
    Unavailable,
)


class HTTPRefusal(Refusal):
    """One of Werkzeug's own HTTP errors (an unknown route, a method no route takes...)."""

    def __init__(
        self, status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()
    ):
        super().__init__(message)
        # Instance attributes shadow the class's: this one refusal's own status and code.
        self.status = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]
        self.headers = headers  # type: ignore[misc]


def from_werkzeug(error: Any) -> HTTPRefusal:
    """A Werkzeug HTTPException as a refusal, rendered like memflask's own."""
    code = (error.name or "error").lower().replace(" ", "_")
    headers = tuple(
        (name, value) for name, value in error.get_headers() if name.lower() != "content-type"
    )
    return HTTPRefusal(error.code or 500, code, error.description or "", headers)
