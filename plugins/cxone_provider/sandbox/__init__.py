"""An embedded NICE CXone for demos, tests and users' own DAG tests (the moto of this provider).

A real HTTP server (FastAPI on uvicorn, both shipped with Airflow 3) that serves CXone's auth host
(token endpoint, OIDC document, JWKS and RS256-signed id_tokens, discovery; see
:mod:`cxone_provider.sandbox.oidc`) and the Agent API calls this provider makes, with CXone's paths, bodies and
failure shapes, accepting requests shaped as NICE's published clients send them (see
:mod:`cxone_provider.sandbox.app`), fault knobs (latency, 429, 503, dropped connections, malformed
answers such as a proxy's HTML page or a dripping body, a path filter, token lifetime) and tenant
settings (``join_mode``, ``states_session_id``; see :mod:`cxone_provider.sandbox.faults`), and
inspectable state and request journal under ``/_sandbox/``. Start it with ``cxone-sandbox --port 8765``
(or ``python -m cxone_provider.sandbox.cli``), or from a test with
:class:`cxone_provider.testing.SandboxServer`.

Whatever reaches it, it stays bounded and in its owner's hands (see
:mod:`cxone_provider.sandbox.settings`): request bodies over ``--max-body-bytes`` (1 MiB) are refused
with ``413`` unread, the journal keeps the ``--journal-size`` (10,000) most recent requests, and
beyond loopback the ``/_sandbox/`` routes need an admin token (``CXONE_SANDBOX_ADMIN_TOKEN``).

The shipped seed (``default_seed.json``) covers every result condition of *Join Agent Session*:

- tenant ``11ee0000-0000-4000-8000-00000000cx01``; application ``sandbox-client`` /
  ``sandbox-client-secret`` (HTTP Basic, or ``client_id``/``client_secret`` fields, on ``/auth/token``).
- access keys (``username`` / ``password`` of the token request) and the agents they log in as:

  - ``SANDBOX-QA-KEY`` / ``sandbox-qa-secret``: agent 1001 Quinn Supervisor, may impersonate (the
    default SecurityUser);
  - ``SANDBOX-NOIMP-KEY`` / ``sandbox-noimp-secret``: agent 1002 Nico Lead, active, may not impersonate;
  - ``SANDBOX-INACTIVE-KEY`` / ``sandbox-inactive-secret``: agent 1003 Ivy Former, inactive (its token
    request fails with ``invalid_grant``).

- agents 2001-2004 (team 20) and 2005-2008 (team 30) work the floor; 2009 (team 20) is not logged in.
- sessions ``sess-2001`` … ``sess-2006`` are active (agents 2001-2006, in states Available,
  InboundContact, Unavailable); ``sess-2007`` and ``sess-2008`` have ended.

So ``POST agent-sessions/join?asAgentId=…&sessionId=…`` answers:

- ``1001`` / ``sess-2001``: 202, ``Success`` (again: the same 202, the join is idempotent);
- ``1003`` / any: 403 ``InvalidSecurityUser`` (agent inactive);
- ``1002`` / any: 403 ``ImpersonateNotEnabled``;
- ``9999`` / any: 404 ``InvalidAgentId``;
- ``1001`` / ``sess-2007``: 409 ``InvalidAgentSession`` (session ended);
- ``1001`` / ``no-such``: 404 ``InvalidAgentSession`` (unknown session);
- ``1001`` / none (the published request, ``asAgentId`` only), or any session under
  ``join_mode="spec"``: the agent's own live session, 404 ``InvalidAgentSession`` while 1001 is not
  logged in (``POST agent-sessions?asAgentId=1001&stationId=…`` logs it in).

``--live-sessions N`` (or :func:`generate_seed`) adds N logged-in agents 5001… with sessions
``sess-5001``…, for sweeps of a thousand sessions.
"""

from __future__ import annotations

from cxone_provider.sandbox.app import create_app
from cxone_provider.sandbox.faults import Faults
from cxone_provider.sandbox.seed import default_seed, generate_seed, load_seed
from cxone_provider.sandbox.settings import Settings

__all__ = ["Faults", "Settings", "create_app", "default_seed", "generate_seed", "load_seed"]
