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

Tenant settings (not faults; their defaults are the sandbox's historical behaviour):

``join_mode``
    ``"session"`` (default): ``POST agent-sessions/join`` joins the session named by the project's
    ``sessionId`` parameter (a request without one, as NICE publishes it, attaches the agent to its
    own live session). ``"spec"``: the join behaves as NICE publishes it, taking ``asAgentId`` only:
    ``sessionId`` is ignored and the agent is attached to *its own* live session, whose id the answer
    carries (``404 InvalidAgentSession`` when it has none). The agent, active and impersonation
    checks come first in both modes.
``states_session_id``
    ``true`` (default): ``GET agents/states`` rows carry ``sessionId``, a sandbox extension. ``false``:
    the rows follow the published schema, which has no ``sessionId``.

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

# Faults that replace the response; their rates share one die, so they must sum to at most 1.
# New kinds go last: the windows of the older ones stay put, so seeded runs stay reproducible.
_FAILURES: tuple[tuple[str, FaultKind], ...] = (
    ("rate_drop", "drop"),
    ("rate_503", "503"),
    ("rate_429_retry_after", "429_retry_after"),
    ("rate_429_no_retry_after", "429"),
    ("rate_html", "html"),
    ("rate_non_json", "non_json"),
    ("rate_truncated_json", "truncated_json"),
    ("rate_no_session_id", "no_session_id"),
    ("rate_huge_body", "huge_body"),
    ("rate_slow_drip", "slow_drip"),
    ("rate_401", "401"),
)
_FAILURE_FIELDS = tuple(name for name, _ in _FAILURES)
_RATE_FIELDS = ("slow_rate", *_FAILURE_FIELDS)
_INT_FIELDS = {"retry_after_s", "token_lifetime_s", "random_seed", "huge_body_bytes"}
_BOOL_FIELDS = {"apply_to_auth", "states_session_id"}

JoinMode = Literal["session", "spec"]
#: The values of ``join_mode``: the project's join (by ``sessionId``) or the published one (own session).
JOIN_MODES: tuple[JoinMode, ...] = ("session", "spec")


@dataclass(frozen=True)
class Faults:
    """The fault configuration of a sandbox; all knobs default to off.

    :param latency_ms: milliseconds added to every auth, discovery and API request.
    :param slow_rate: fraction (0..1) of requests delayed by a further ``slow_ms``.
    :param slow_ms: the extra delay of a slow request, in milliseconds.
    :param rate_429_retry_after: fraction answered 429 with a ``Retry-After`` header.
    :param retry_after_s: the ``Retry-After`` value, in seconds.
    :param rate_429_no_retry_after: fraction answered 429 without ``Retry-After``.
    :param rate_503: fraction answered 503.
    :param rate_drop: fraction whose connection is aborted with no response at all.
    :param rate_html: fraction answered 502 ``text/html`` (a proxy's error page).
    :param rate_non_json: fraction answered 200 ``text/plain`` ``OK``.
    :param rate_truncated_json: fraction answered 200 with JSON cut mid-object.
    :param rate_no_session_id: fraction answered ``{}`` (202 for the join, else 200).
    :param rate_huge_body: fraction answered 200 with a JSON body of ``huge_body_bytes`` bytes.
    :param huge_body_bytes: the size of a huge body, in bytes.
    :param rate_slow_drip: fraction whose body trickles one byte every ``drip_interval_s``.
    :param drip_interval_s: seconds between two bytes of a dripped body.
    :param rate_401: fraction of API requests answered ``401 invalid_token`` (a revoked token).
    :param token_lifetime_s: lifetime of the access tokens issued, in seconds.
    :param random_seed: seed of the dice, for reproducible runs; ``None`` seeds from the OS.
    :param apply_to_auth: let the random faults hit the auth and discovery endpoints too.
    :param path_filter: when set, the random faults hit only paths containing this substring.
    :param join_mode: ``"session"`` (join the ``sessionId`` asked for) or ``"spec"`` (join the agent's
        own live session, ignoring ``sessionId``, as NICE publishes the call).
    :param states_session_id: whether ``agents/states`` rows carry the ``sessionId`` extension.
    """

    latency_ms: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 200.0
    rate_429_retry_after: float = 0.0
    retry_after_s: int = 1
    rate_429_no_retry_after: float = 0.0
    rate_503: float = 0.0
    rate_drop: float = 0.0
    rate_html: float = 0.0
    rate_non_json: float = 0.0
    rate_truncated_json: float = 0.0
    rate_no_session_id: float = 0.0
    rate_huge_body: float = 0.0
    huge_body_bytes: int = 5_000_000
    rate_slow_drip: float = 0.0
    drip_interval_s: float = 1.0
    rate_401: float = 0.0
    token_lifetime_s: int = 3600
    random_seed: int | None = None
    apply_to_auth: bool = False
    path_filter: str | None = None
    join_mode: JoinMode = "session"
    states_session_id: bool = True

    def __post_init__(self) -> None:
        if self.path_filter == "":
            # "" would match every path; a CLI or JSON caller means "no filter" by it.
            object.__setattr__(self, "path_filter", None)
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        total = sum(getattr(self, name) for name in _FAILURE_FIELDS)
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"the rates of the failures ({', '.join(_FAILURE_FIELDS)}) add up to {total:g}, more than 1"
            )
        for name in ("latency_ms", "slow_ms", "retry_after_s", "drip_interval_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if self.token_lifetime_s <= 0:
            raise ValueError(f"token_lifetime_s must be positive, got {self.token_lifetime_s!r}")
        if self.huge_body_bytes <= 0:
            raise ValueError(f"huge_body_bytes must be positive, got {self.huge_body_bytes!r}")
        if self.join_mode not in JOIN_MODES:
            raise ValueError(f"join_mode must be one of {', '.join(JOIN_MODES)}, got {self.join_mode!r}")

    @classmethod
    def from_mapping(cls, knobs: Mapping[str, Any] | None = None) -> Faults:
        """Build faults from a mapping of knobs, merged over the defaults.

        :param knobs: knob name to value; unknown names and values of the wrong type are rejected.
        :raises ValueError: on an unknown knob or a value out of range.
        """
        if not knobs:
            return cls()
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(knobs) - set(fields))
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(unknown)}; known: {', '.join(fields)}")
        values: dict[str, Any] = {}
        for name, raw in knobs.items():
            values[name] = _coerce(name, raw)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The knobs as a JSON-able mapping."""
        return dataclasses.asdict(self)


def _coerce(name: str, raw: Any) -> Any:
    """Coerce one knob value from JSON or the command line to its declared type."""
    if name in _BOOL_FIELDS:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"true", "false", "1", "0"}:
            return raw.lower() in {"true", "1"}
        raise ValueError(f"{name} must be a boolean, got {raw!r}")
    if name == "path_filter":
        if raw is None or isinstance(raw, str):
            return raw
        raise ValueError(f"{name} must be a string or null, got {raw!r}")
    if name == "join_mode":
        if isinstance(raw, str) and raw in JOIN_MODES:
            return raw
        raise ValueError(f"{name} must be one of {', '.join(JOIN_MODES)}, got {raw!r}")
    if name == "random_seed" and raw is None:
        return None
    # bool is an int subclass; a boolean rate is certainly a mistake.
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"{name} must be a number, got {raw!r}")
    try:
        if name in _INT_FIELDS:
            number = float(raw)
            if not number.is_integer():
                raise ValueError
            return int(number)
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


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
            for name, candidate in _FAILURES:
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
