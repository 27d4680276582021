"""Exceptions of the service side (the HTTP client's view of a service).

    OptirecError                    (optirec.rules.errors)
     └── ServiceError               the service answered with an error we cannot map to a domain error
          ├── ServiceUnavailable    the service could not be reached (connection refused, timeout)
          ├── Unauthorized          401: OPTIREC_API_KEY is set on the service and the key is missing or wrong
          ├── NotFound              404 for an id (e.g. an unknown trial id); unknown *names* are UnknownNameError
          ├── Conflict              409: e.g. cancelling a trial that has already finished
          ├── QueueFull             429: the trial queue is full; ``retry_after`` says when to come back
          └── TrialTimeout          a trial did not finish within the time the caller was ready to wait

Errors the service reports about the input come back as the domain's own exceptions
(ProfileError for a 422, UnknownNameError for a 404), so callers handle one set of errors
whether they use the embedded engine or a remote service.
"""

from __future__ import annotations

from optirec.rules.errors import OptirecError

__all__ = ["Conflict", "NotFound", "QueueFull", "ServiceError", "ServiceUnavailable", "TrialTimeout", "Unauthorized"]


class ServiceError(OptirecError):
    """The service answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"HTTP {status}: {message}")


class ServiceUnavailable(ServiceError):
    """The service could not be reached."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(0, f"cannot reach {url}: {reason}")


class Unauthorized(ServiceError):
    """401: the service wants an API key (``api_key=`` of the client) and got none or a wrong one."""


class NotFound(ServiceError):
    """404 for an id the service does not know (an unknown trial)."""


class Conflict(ServiceError):
    """409: the request conflicts with the resource's state (cancelling a finished trial)."""


class QueueFull(ServiceError):
    """429: the trial queue is full; retry after ``retry_after`` seconds (None when the service did not say)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(status, message)


class TrialTimeout(ServiceError, TimeoutError):
    """A trial was still queued or running when the caller's ``timeout`` ran out (it keeps running)."""

    def __init__(self, trial_id: str, timeout: float, status: str) -> None:
        self.trial_id = trial_id
        self.timeout = timeout
        self.last_status = status
        super().__init__(0, f"trial {trial_id!r} is still {status} after {timeout:g} s")
