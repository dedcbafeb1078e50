"""Every exception this package raises, in one family.

``CxoneError`` is the root of what the provider raises at run time: the connection is unusable
(:class:`CxoneConfigError`), CXone gave no token (:class:`CxoneAuthError`), an API call ended in an
error answer or in no answer at all (:class:`CxoneApiError`), or a DAG is wired in a way a join cannot
work with. Which Studio result condition an error means is decided in :mod:`cxone_provider.domain.classification`,
not here; so is :class:`~cxone_provider.domain.conditions.InputRejected`, which is not an error of this family
but an input that Studio routes to a result condition without calling the API.

Errors that no retry can fix derive from ``AirflowFailException`` too, so that they fail a task at
once wherever they are raised (the failure policy of :mod:`cxone_provider.operators.base`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxone_provider.compat import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from cxone_provider.response import ApiResponse

#: ``error`` values of the token endpoint (OAuth 2) that mean CXone refused the access key or the app.
TOKEN_REFUSED_ERRORS = frozenset({"invalid_grant", "invalid_client", "invalid_token", "unauthorized_client"})


class CxoneError(AirflowException):
    """Base of the provider's run-time errors."""


class CxoneConfigError(CxoneError, AirflowFailException):
    """The ``cxone`` connection is unusable; the message names the connection and the field.
    A retry reads the same connection: it fails the task without one."""


class UnsafePathIdError(CxoneError, ValueError):
    """An id given to a hook method would change the request's path (``.``, ``..``, ``a/b``, ``%2e%2e``…);
    nothing was sent. The message names the method, the field and the value."""


class CxoneAuthError(CxoneError):
    """CXone gave no token for the connection's access key (refused it, or could not be reached).

    ``error`` is the token endpoint's OAuth ``error`` (``invalid_grant``…), ``attempts`` the requests made.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, error: str | None = None, attempts: int = 0
    ) -> None:
        super().__init__(message)
        self.http_status = status_code
        self.error = error
        self.attempts = attempts

    @property
    def refused(self) -> bool:
        """CXone refused the access key or the application (not an outage)."""
        return self.error in TOKEN_REFUSED_ERRORS or (self.error is None and self.http_status in (401, 403))


class CxoneApiError(CxoneError):
    """An API call's final answer was an error, or nothing came back (after retries and the single
    token renewal). ``response.status_code`` is ``None`` when no answer arrived."""

    def __init__(self, response: ApiResponse, action: str) -> None:
        # CXone's Agent API errors carry no body, so usually no error name: the message (its header) says it.
        named = f", {response.error}" if response.error else ""
        super().__init__(f"CXone {action} failed ({describe_status(response.status_code)}{named}): {response.message}")
        self.response = response
        self.http_status = response.status_code


class CxoneDiscoveryError(CxoneApiError):
    """The API host could not be found (discovery failed, or named a host the token must not go to),
    so no Agent API call was sent."""


class CxoneStopped(CxoneError):
    """The call was not sent, or not retried, because its task is stopping (``on_kill``)."""


class BranchConfigError(CxoneError, AirflowFailException):
    """``branches`` names an unknown condition or a task that is not directly downstream."""


class ConditionRulesError(CxoneError, AirflowFailException, ValueError):
    """``condition_rules`` holds a bad rule (status, pattern or condition); the message names it."""


class AmbiguousSecurityUserError(CxoneError, AirflowFailException):
    """Two SetSecurityUserOperators are equally near: which supervisor joins must not be left to chance."""


class NoSessionIdsError(CxoneError, AirflowFailException):
    """The tenant's agent state rows carry no session id, so live sessions cannot be listed from them."""


def describe_status(status_code: int | None) -> str:
    """``HTTP 404``, or ``no HTTP answer`` when nothing came back."""
    return f"HTTP {status_code}" if status_code is not None else "no HTTP answer"
