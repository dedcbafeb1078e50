"""Fault knobs and tenant settings of the CXone sandbox, and the seeded dice that apply the faults.

Every fault knob defaults to "off", so a sandbox without faults behaves like a healthy tenant. Two
settings describe *which* tenant it imitates rather than a fault (see "Tenant settings" below); they
travel with the knobs (``PUT /_sandbox/faults``, command-line flags) so one call sets up a test. The knobs:

``latency_ms``
    Added to every auth, discovery and Agent API request (it models network distance, so it is not
    limited by ``apply_to_auth``).
``slow_rate`` / ``slow_ms``
    A fraction of requests that take ``slow_ms`` longer (a slow upstream, a GC pause).
``rate_429_retry_after`` / ``retry_after_s``
    A fraction of requests answered ``429`` with ``Retry-After: <retry_after_s>``.
``rate_429_no_retry_after``
    A fraction answered ``429`` without ``Retry-After`` (CXone does not always send it).
``rate_503``
    A fraction answered ``503``.
``rate_drop``
    A fraction whose TCP connection is aborted before any response byte is sent.
``rate_html``
    A fraction answered ``502`` with ``Content-Type: text/html`` and nginx's error page (a proxy in
    front of the API, misconfigured or failing).
``rate_non_json``
    A fraction answered ``200`` ``text/plain`` ``OK`` (a proxy answering in the API's place).
``rate_truncated_json``
    A fraction answered ``200`` ``application/json`` with a body cut mid-object
    (``{"sessionId": "sess-20``), its ``Content-Length`` matching the bytes sent.
``rate_no_session_id``
    A fraction answered ``{}``: ``202`` for the join, ``200`` elsewhere.
``rate_huge_body`` / ``huge_body_bytes``
    A fraction answered ``200`` with a JSON object of ``huge_body_bytes`` bytes (mostly padding),
    streamed in chunks.
``rate_slow_drip`` / ``drip_interval_s``
    A fraction answered ``200`` whose headers come at once and whose 20-byte JSON body comes one
    byte every ``drip_interval_s``: a client must bound the whole read, not each ``recv``.
``rate_401``
    A fraction of API requests answered ``401 invalid_token`` although the token is valid: a token
    revoked behind the client's back. The client's one renewal meets it again at the same rate.
``token_lifetime_s``
    ``expires_in`` of the tokens issued from then on.
``random_seed``
    Seeds the dice so that a run is reproducible (``None``: seeded from the OS).
``apply_to_auth``
    When false (the default) the random faults hit only ``/inContactAPI/`` paths; when true they
    also hit ``/auth/token`` and discovery.
``path_filter``
    When set, the random faults hit only requests whose path contains this substring (within the
    scope ``apply_to_auth`` sets), e.g. ``"agent-sessions/join"`` to fail the join while the agent
    lookup stays healthy. ``latency_ms`` still applies everywhere; ``""`` means unset.

Tenant settings (not faults). Their defaults follow what NICE publishes (design.md, "Published facts");
the other values are this project's extensions, kept for old tests and documented as such:

``join_mode``
    ``"spec"`` (default): ``POST agent-sessions/join`` behaves as NICE publishes it, taking
    ``asAgentId`` only (missing or ``""``: the token holder's own agent): ``sessionId`` is ignored and
    the agent is attached to *its own* live session, whose current id the answer carries
    (``404 InvalidAgentSession`` when it has none). ``"session"`` (extension): the join joins the
    session named by the project's ``sessionId`` parameter (a request without one still attaches the
    agent to its own live session). The agent, active and impersonation checks come first in both modes.
``states_session_id``
    ``false`` (default): ``GET agents/states`` rows follow the published schema, which has no
    ``sessionId``. ``true`` (extension): the rows carry ``sessionId``.
``status_description``
    How an Agent API error names itself in the ``icStatusDescription`` response header (the only place
    CXone puts it): ``"name"`` (default, e.g. ``InvalidAgentSession``), ``"sentence"`` (NICE's published
    wordings: 404 ``Invalid agent session Id.``, ``Invalid Agent Id``, 409 ``Invalid State``, 400
    ``Invalid state request.``; the sandbox's own sentence where NICE publishes none) or ``"none"`` (no
    header: the status alone).
``error_body``
    ``"none"`` (default): an Agent API error has no body, as NICE publishes it. ``"legacy"``
    (extension): it also carries the sandbox's historical ``{"error", "error_description"}`` body.
``session_timeout_s``
    Seconds after which a session that a client must keep alive and nobody polls ends (a logout). A
    session started through ``POST agent-sessions`` must be polled (``get-next-event``) from its start;
    a seeded session or one logged in by ``PUT /_sandbox/agents/{agentId}/state`` is kept alive by its
    agent's own (simulated) softphone until a client first polls it, and from then on by that client.
    A poll in progress counts as alive; the clock restarts when it answers.
``rate_limit_rps`` / ``rate_limit_burst``
    The tenant's rate limit: a token bucket of ``rate_limit_burst`` requests (default: one second's
    worth), refilled at ``rate_limit_rps`` per second and shared by every client of the sandbox, as a
    tenant's budget is. An Agent API request that finds the bucket empty is answered ``429`` with
    CXone's error body and ``Retry-After`` in whole seconds (as HTTP gateways send it), and journaled
    with ``fault`` ``rate_limit``. Off by default.

The "random faults" are everything but ``latency_ms`` and ``token_lifetime_s``. Those that replace
the response (429, 503, drop and the malformed answers) share one die, so their rates must add up to
at most 1; each is journaled under its own ``fault`` name (``429_retry_after``, ``429``, ``503``,
``drop``, ``html``, ``non_json``, ``truncated_json``, ``no_session_id``, ``huge_body``,
``slow_drip``; ``slow`` for a request that was only slowed). A faulted request never reaches the API,
so it never changes state.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from cxone_sandbox.declare import check, from_mapping, setting, specs

if TYPE_CHECKING:
    from collections.abc import Mapping

FaultKind = Literal[
    "429_retry_after",
    "429",
    "503",
    "drop",
    "html",
    "non_json",
    "truncated_json",
    "no_session_id",
    "huge_body",
    "slow_drip",
    "401",
    "slow",
]

JoinMode = Literal["spec", "session"]
#: The values of ``join_mode``: the published join (own session) or the project's (by ``sessionId``).
JOIN_MODES: tuple[JoinMode, ...] = ("spec", "session")
StatusDescription = Literal["name", "sentence", "none"]
ErrorBody = Literal["none", "legacy"]
#: Default of ``session_timeout_s``: two of NICE's SDK's longest polls (60 s each) may be missed.
DEFAULT_SESSION_TIMEOUT_S = 120.0


def _rate(help_text: str, fault: FaultKind, die: int | None = None) -> Any:
    """A fraction of requests (0 to 1) that meet ``fault``.

    :param die: the failure's place on the shared die (``None``: the slow-down's own die). New kinds
        take the next place: the windows of the older ones stay put, so seeded runs stay reproducible.
    """
    return setting(0.0, help_text, group="faults", metavar="RATE", minimum=0, maximum=1, fault=fault, die=die)


def _faults(default: Any, help_text: str, **kwargs: Any) -> Any:
    return setting(default, help_text, group="faults", **kwargs)


@dataclass(frozen=True)
class Faults:
    """The fault configuration of a sandbox, all knobs off by default, and its tenant settings.

    Each field is declared once, with its help text and range (see
    :mod:`cxone_sandbox.declare`): the command line, ``PUT /_sandbox/faults``,
    :class:`~cxone_provider.testing.SandboxServer` and the docs' table (docs/sandbox.md) are derived from it.
    """

    latency_ms: float = _faults(
        0.0, "milliseconds added to every auth, discovery and API request", metavar="MS", minimum=0
    )
    slow_rate: float = _rate("fraction of requests delayed by a further slow_ms", "slow")
    slow_ms: float = _faults(200.0, "the extra delay of a slow request, in milliseconds", metavar="MS", minimum=0)
    rate_429_retry_after: float = setting(
        0.0,
        "fraction answered 429 with a Retry-After header",
        group="faults",
        flag="--rate-429",
        metavar="RATE",
        minimum=0,
        maximum=1,
        fault="429_retry_after",
        die=2,
    )
    retry_after_s: int = _faults(1, "the Retry-After value, in seconds", metavar="S", minimum=0)
    rate_429_no_retry_after: float = _rate("fraction answered 429 without Retry-After", "429", 3)
    rate_503: float = _rate("fraction answered 503", "503", 1)
    rate_drop: float = _rate("fraction whose connection is aborted with no response at all", "drop", 0)
    rate_html: float = _rate("fraction answered 502 text/html (a proxy's error page)", "html", 4)
    rate_non_json: float = _rate("fraction answered 200 text/plain 'OK'", "non_json", 5)
    rate_truncated_json: float = _rate("fraction answered 200 with JSON cut mid-object", "truncated_json", 6)
    rate_no_session_id: float = _rate("fraction answered '{}' (202 for the join, else 200)", "no_session_id", 7)
    rate_huge_body: float = _rate("fraction answered 200 with a JSON body of huge_body_bytes bytes", "huge_body", 8)
    huge_body_bytes: int = _faults(5_000_000, "the size of a huge body, in bytes", metavar="N", positive=True)
    rate_slow_drip: float = _rate("fraction whose body trickles one byte every drip_interval_s", "slow_drip", 9)
    drip_interval_s: float = _faults(1.0, "seconds between two bytes of a dripped body", metavar="S", minimum=0)
    rate_401: float = _rate("fraction of API requests answered 401 invalid_token (a revoked token)", "401", 10)
    token_lifetime_s: int = _faults(
        3600, "expires_in of the access tokens issued, in seconds", metavar="S", positive=True
    )
    random_seed: int | None = _faults(
        None, "seed of the fault dice, for reproducible runs (none: from the OS)", metavar="N"
    )
    apply_to_auth: bool = _faults(False, "let the random faults hit the auth and discovery endpoints too")
    path_filter: str | None = _faults(
        None,
        "random faults hit only paths containing TEXT, e.g. agent-sessions/join (latency hits all; '' means none)",
        metavar="TEXT",
    )
    join_mode: JoinMode = setting(  # noqa: RUF009 - setting() is dataclasses.field() with metadata
        "spec",
        "spec: as NICE publishes it, the join takes asAgentId only (none: the token holder's agent) and "
        "attaches it to its own live session; session (extension): the join joins the sessionId asked for",
        group="tenant",
    )
    states_session_id: bool = setting(
        False,
        "agents/states rows carry the sandbox's sessionId extension (off: the published schema)",
        group="tenant",
    )
    status_description: StatusDescription = setting(  # noqa: RUF009 - setting() is dataclasses.field()
        "name",
        "what an Agent API error says in its icStatusDescription header: name (InvalidAgentSession), "
        "sentence (NICE's published wording, e.g. 'Invalid agent session Id.') or none (no header)",
        group="tenant",
    )
    error_body: ErrorBody = setting(  # noqa: RUF009 - setting() is dataclasses.field() with metadata
        "none",
        "none: Agent API errors have no body, as NICE publishes; legacy (extension): they also carry the "
        "sandbox's old {error, error_description} body",
        group="tenant",
    )
    session_timeout_s: float = setting(
        DEFAULT_SESSION_TIMEOUT_S,
        "seconds after which a session its client must keep alive by polling get-next-event, and does "
        "not, ends (seeded sessions: once a client has polled them); precise to min(1 s, a tenth of the "
        "time-out): idle sessions are looked for on Agent API calls and GET /_sandbox/state, at most that often",
        group="tenant",
        metavar="S",
        positive=True,
    )
    rate_limit_rps: float | None = setting(
        None,
        "the tenant's rate limit: Agent API requests per second, one token bucket shared by every client "
        "(none: no limit); a request over it gets 429 with Retry-After in whole seconds",
        group="tenant",
        metavar="R",
        positive=True,
    )
    rate_limit_burst: int | None = setting(
        None,
        "requests the rate limit's bucket holds (none: one second of rate_limit_rps, at least 1)",
        group="tenant",
        metavar="N",
        positive=True,
    )

    def __post_init__(self) -> None:
        if self.path_filter == "":
            # "" would match every path; a CLI or JSON caller means "no filter" by it.
            object.__setattr__(self, "path_filter", None)
        check(self)
        total = sum(getattr(self, name) for name, _ in FAILURES)
        if total > 1.0 + 1e-9:
            names = ", ".join(name for name, _ in FAILURES)
            raise ValueError(f"the rates of the failures ({names}) add up to {total:g}, more than 1")

    @classmethod
    def from_mapping(cls, knobs: Mapping[str, Any] | None = None) -> Faults:
        """Build faults from a mapping of knobs (JSON or command-line values), merged over the defaults.

        :param knobs: knob name to value; unknown names and values of the wrong type are rejected.
        :raises ValueError: on an unknown knob or a value out of range.
        """
        faults: Faults = from_mapping(cls, knobs, "fault knob", convert=True)
        return faults

    def to_dict(self) -> dict[str, Any]:
        """The knobs as a JSON-able mapping."""
        return dataclasses.asdict(self)


#: The faults that replace the response, in their order on the shared die (rates sum to at most 1).
FAILURES: tuple[tuple[str, FaultKind], ...] = tuple(
    (spec.name, spec.meta["fault"])
    for spec in sorted((s for s in specs(Faults) if s.meta.get("die") is not None), key=lambda s: s.meta["die"])
)


@dataclass(frozen=True)
class Decision:
    """What the dice decided for one request.

    :param kind: the fault that replaces or slows the response, or ``None``.
    :param delay_s: seconds to wait before answering (latency plus any slow-down).
    """

    kind: FaultKind | None
    delay_s: float


class FaultInjector:
    """Rolls the seeded dice for each request; the single owner of the fault RNG.

    :param faults: the initial configuration.
    """

    def __init__(self, faults: Faults | None = None) -> None:
        self.configure(faults or Faults())

    def configure(self, faults: Faults) -> None:
        """Replace the configuration and re-seed the dice, so the same knobs give the same run."""
        self.faults = faults
        seed = faults.random_seed
        # Two dice, so that turning slow-downs on does not change which requests fail.
        self._fail_rng = random.Random(seed)
        self._slow_rng = random.Random(None if seed is None else f"slow-{seed}")

    def decide(self, *, random_faults: bool, latency: bool) -> Decision:
        """Roll for one request.

        :param random_faults: whether the request is in scope of the random faults.
        :param latency: whether ``latency_ms`` applies to the request.
        """
        f = self.faults
        delay_ms = f.latency_ms if latency else 0.0
        kind: FaultKind | None = None
        if random_faults:
            roll = self._fail_rng.random()
            for name, candidate in FAILURES:
                rate = getattr(f, name)
                if roll < rate:
                    kind = candidate
                    break
                roll -= rate
            if f.slow_rate and self._slow_rng.random() < f.slow_rate:
                delay_ms += f.slow_ms
                if kind is None:
                    kind = "slow"
        return Decision(kind=kind, delay_s=delay_ms / 1000.0)
