"""An embedded NICE CXone for demos, tests and users' own DAG tests (the moto of this provider).

A real HTTP server (FastAPI on uvicorn, both shipped with Airflow 3) that serves CXone's auth host
(token endpoint, OIDC document, JWKS and RS256-signed id_tokens, discovery; see
:mod:`cxone_sandbox.oidc`) and the Agent API calls this provider and NICE's own agent SDK
make, with CXone's paths, bodies and failure shapes, accepting requests shaped as NICE's published
clients send them (see :mod:`cxone_sandbox.app`), fault knobs (latency, 429, 503, dropped
connections, malformed answers such as a proxy's HTML page or a dripping body, a path filter, token
lifetime) and tenant settings (``join_mode``, ``states_session_id``, ``status_description``,
``error_body``, ``session_timeout_s``; see :mod:`cxone_sandbox.faults`), and inspectable
state and request journal under ``/_sandbox/``. Start it with ``cxone-sandbox --port 8765`` (or
``python -m cxone_sandbox.cli``), or from a test with
:class:`cxone_provider.testing.SandboxServer`.

A package of its own beside ``cxone_provider``, in the same distribution: the provider's runtime never
imports it (only ``cxone_provider.testing`` does), and what it needs beyond the provider (uvicorn,
starlette, cryptography) is the ``[sandbox]`` extra: ``pip install "airflow-provider-cxone[sandbox]"``.
It imports nothing of the provider, so that it imitates CXone's contract, not the client's idea of it.

By default it is faithful to what NICE publishes: an Agent API error is its status and the
``icStatusDescription`` header, with no body; the join takes ``asAgentId`` only and attaches to that
agent's own live session; impersonation is judged on the token holder; ``agents/states`` rows carry no
``sessionId``. This project's extensions (joining a session by id, ``sessionId`` in state rows, the
old ``{"error", "error_description"}`` body) are settings a test turns on. A session's life is served
as NICE's SDK reads it (``get-next-event`` with a new id per answer, set state, the idle timeout: see
:mod:`cxone_sandbox.events`).

Whatever reaches it, it stays bounded and in its owner's hands (see
:mod:`cxone_sandbox.settings`): request bodies over ``--max-body-bytes`` (1 MiB) are refused
with ``413`` unread, the journal keeps the ``--journal-size`` (10,000) most recent requests, and
beyond loopback the ``/_sandbox/`` routes need an admin token (``CXONE_SANDBOX_ADMIN_TOKEN``).

The shipped seed (``default_seed.json``) covers every result condition of *Join Agent Session*:

- tenant ``11ee0000-0000-4000-8000-00000000cx01``; application ``sandbox-client`` /
  ``sandbox-client-secret`` (HTTP Basic, or ``client_id``/``client_secret`` fields, on ``/auth/token``).
- access keys (``username`` / ``password`` of the token request) and the agents they log in as:

  - ``SANDBOX-QA-KEY`` / ``sandbox-qa-secret``: agent 1001 Quinn Supervisor, may impersonate (the
    default SecurityUser), logged in with session ``sess-1001``;
  - ``SANDBOX-NOIMP-KEY`` / ``sandbox-noimp-secret``: agent 1002 Nico Lead, active, may not
    impersonate, not logged in;
  - ``SANDBOX-INACTIVE-KEY`` / ``sandbox-inactive-secret``: agent 1003 Ivy Former, inactive (its token
    request fails with ``invalid_grant``).

- agents 2001-2004 (team 20) and 2005-2008 (team 30) work the floor; 2009 (team 20) is not logged in.
  Their time zones are written as CXone writes them (display names such as ``"(GMT-05:00) Eastern
  Time (US & Canada)"``, and Windows ids); 1001-1003 keep IANA names for now.
- sessions ``sess-2001`` … ``sess-2006`` are active (agents 2001-2006, in states Available,
  InboundContact, Unavailable); ``sess-2007`` and ``sess-2008`` have ended.

So the published join (``POST agent-sessions/join`` with ``asAgentId``) answers, with the key:

- QA key, ``1001`` or none: 202 ``{"sessionId": "sess-1001"}`` (``Success`` for ``sess-1001``; any other
  session asked for is ``InvalidAgentSession`` to the provider); ``2001``: 202 ``sess-2001``
  (impersonation allowed); joining again answers the same;
- QA key, ``1003``: 403 ``InvalidSecurityUser`` (agent inactive);
- NOIMP key, ``1001`` (any agent but 1002): 403 ``ImpersonateNotEnabled``;
- QA key, ``9999``: 404 ``InvalidAgentId``;
- QA key, ``2009`` (not logged in) or ``2007`` (its session ended): 404 ``InvalidAgentSession``.

Under ``join_mode="session"`` (the extension) ``asAgentId=1001&sessionId=sess-2001`` joins sess-2001,
``sess-2007`` answers 409 and ``no-such`` 404 ``InvalidAgentSession``.

``--live-sessions N`` (or :func:`generate_seed`) adds N logged-in agents 5001… with sessions
``sess-5001``…, for sweeps of a thousand sessions.
"""

from __future__ import annotations

from cxone_sandbox.app import create_app
from cxone_sandbox.faults import Faults
from cxone_sandbox.seed import default_seed, generate_seed, load_seed
from cxone_sandbox.settings import Settings

__all__ = ["Faults", "Settings", "create_app", "default_seed", "generate_seed", "load_seed"]
