"""Exceptions of the service side (the HTTP client's view of a service).

    OptirecError                    (optirec.rules.errors)
     └── ServiceError               the service answered with an error we cannot map to a domain error
          └── ServiceUnavailable    the service could not be reached (connection refused, timeout)

Errors the service reports about the input come back as the domain's own exceptions
(ProfileError for a 422, UnknownNameError for a 404), so callers handle one set of errors
whether they use the embedded engine or a remote service.
"""

from __future__ import annotations

from optirec.rules.errors import OptirecError

__all__ = ["ServiceError", "ServiceUnavailable"]


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
