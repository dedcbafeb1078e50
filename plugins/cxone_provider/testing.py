"""Test helpers: run the CXone sandbox next to your tests and point a ``cxone`` connection at it.

.. code-block:: python

    from cxone_provider.testing import SandboxServer

    with SandboxServer() as sandbox:
        name, value = sandbox.connection_env()  # ("AIRFLOW_CONN_CXONE_DEFAULT", '{"conn_type": …}')
        sandbox.set_faults(rate_429_retry_after=0.1, random_seed=7)
        ...  # run the DAG or the hook under test
        assert sandbox.state()["join_calls"] == 1

With pytest, the fixtures ``cxone_sandbox_server`` (one server per test session) and
``cxone_sandbox`` (per test: the server reset to its seed, ``AIRFLOW_CONN_CXONE_DEFAULT`` set) are
available after ``pytest_plugins = ["cxone_provider.testing"]`` in your root ``conftest.py``.
Override ``cxone_sandbox_server`` there to start it with your own seed or faults.

The server runs in its own process, so it never competes with the code under test for the GIL. This
module (and only this one of the provider) needs the sandbox package beside it:
``pip install "airflow-provider-cxone[sandbox]"``.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import requests

from cxone_provider.sweeps.shared import forget_pacers
from cxone_sandbox.process import SandboxError, SandboxProcess, die_with_parent
from cxone_sandbox.replay import replay_connection
from cxone_sandbox.seed import sandbox_connection
from cxone_sandbox.settings import JOURNAL_DROPPED_HEADER

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "LEGACY_EXTENSIONS",
    "SOAK_FAULTS",
    "SandboxError",
    "SandboxServer",
    "cxone_sandbox",
    "cxone_sandbox_server",
    "die_with_parent",
]

#: A bad day at a contact centre, as sandbox faults: 10% 429 (half of them without Retry-After), 5% 503,
#: 2% dropped connections, 200 ms more on 1% of requests and 5-second tokens. The fault soak uses it;
#: add ``random_seed`` for a reproducible run.
SOAK_FAULTS: dict[str, Any] = {
    "rate_429_retry_after": 0.05,
    "retry_after_s": 1,
    "rate_429_no_retry_after": 0.05,
    "rate_503": 0.05,
    "rate_drop": 0.02,
    "slow_rate": 0.01,
    "slow_ms": 200,
    "token_lifetime_s": 5,
}
#: The sandbox's extensions of CXone's published behaviour, as fault knobs: joining a session by its id
#: (``join_mode="session"``), ``sessionId`` in ``agents/states`` rows, and the ``{"error",
#: "error_description"}`` body on Agent API errors. The sandbox is faithful to CXone without them; a
#: test of DAGs written for the old form passes them (``SandboxServer(faults=LEGACY_EXTENSIONS)``).
LEGACY_EXTENSIONS: dict[str, Any] = {"join_mode": "session", "states_session_id": True, "error_body": "legacy"}


class SandboxServer(SandboxProcess):
    """The CXone sandbox as a subprocess on 127.0.0.1 with a free port; a context manager.

    What a test needs beside the process (:class:`cxone_sandbox.process.SandboxProcess`, which takes
    the same arguments): the connection to it, and its admin routes (faults, journal, state, reset).
    """

    # ------------------------------------------------------------------------------------ facts

    @property
    def tenant_id(self) -> str:
        """The seed's tenant id."""
        return str(self.seed["tenant_id"])

    @property
    def api_base_url(self) -> str:
        """The Agent API base, as discovery would give it (with the hook's default version)."""
        from cxone_provider.client.auth import API_PATH_TEMPLATE
        from cxone_provider.client.settings import DEFAULT_API_VERSION

        return API_PATH_TEMPLATE.format(endpoint=self.url, version=DEFAULT_API_VERSION)

    def secret_of(self, key: str) -> str:
        """The access key secret of ``key`` in the seed.

        :raises KeyError: when the seed has no such access key.
        """
        for user in self.seed.get("users", []):
            if user["access_key_id"] == key:
                return str(user["access_key_secret"])
        known = ", ".join(u["access_key_id"] for u in self.seed.get("users", []))
        raise KeyError(f"no access key {key!r} in the sandbox seed (known: {known})")

    def connection(
        self,
        *,
        key: str | None = None,
        discovery: bool = True,
        **extra: Any,
    ) -> dict[str, Any]:
        """The Airflow ``cxone`` connection for this sandbox, as a JSON-able mapping.

        The same connection ``cxone-sandbox`` prints as ``AIRFLOW_CONN_CXONE_DEFAULT=…`` (both come from
        :func:`cxone_sandbox.seed.sandbox_connection`).

        :param key: the access key (``login``) whose secret becomes the ``password``; default: the
            seed's first access key that may impersonate (``SANDBOX-QA-KEY`` in the shipped seed).
        :param discovery: find the API host by discovery (``tenant_id``), or pin it with
            ``api_base_url`` (a replay decides by its record).
        :param extra: further connection extras (``read_timeout``, ``api_version``…), set last; with
            ``tls``, ``verify_ssl`` is the server's CA certificate unless given here.
        """
        pinned = not discovery and self.recording is None
        extras: dict[str, Any] = {"api_base_url": self.api_base_url} if pinned else {}
        if self.tls:
            extras["verify_ssl"] = self.ca_file
        extras.update(extra)
        if self.recording is not None:
            return replay_connection(self.seed, self.recording, self.url, key=key, extra=extras)
        return sandbox_connection(self.seed, self.url, key=key, extra=extras)

    def connection_env(self, conn_id: str = "cxone_default", **kwargs: Any) -> tuple[str, str]:
        """The environment variable that defines the connection: ``(AIRFLOW_CONN_<ID>, json)``.

        :param conn_id: the connection id.
        :param kwargs: as for :meth:`connection`.
        """
        return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(self.connection(**kwargs))

    # ------------------------------------------------------------------------------------ admin

    def admin_headers(self) -> dict[str, str]:
        """The headers an admin request to this server needs: the admin token's, when there is one."""
        token = self.settings.admin_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _admin_response(self, method: str, path: str, body: Any = None) -> requests.Response:
        response = requests.request(
            method,
            f"{self.url}/_sandbox/{path}",
            json=body,
            headers=self.admin_headers(),
            timeout=30,
            verify=self.ca_file if self.tls and self.ca_file else True,
        )
        if not response.ok:
            raise SandboxError(f"{method} /_sandbox/{path}: {response.status_code} {response.text}")
        return response

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        return self._admin_response(method, path, body).json()

    def set_faults(self, **knobs: Any) -> dict[str, Any]:
        """Replace the faults: the knobs given, every other knob back to its default (off).

        :return: the faults now in effect.
        """
        return dict(self._admin("PUT", "faults", knobs))

    def faults(self) -> dict[str, Any]:
        """The faults in effect."""
        return dict(self._admin("GET", "faults"))

    def journal(self) -> list[dict[str, Any]]:
        """Every request received since the last clear or reset (admin calls excluded), oldest first,
        as far as the journal keeps them (the most recent ``journal_size``; see :meth:`journal_dropped`).

        The list ``GET /_sandbox/journal`` answers, unchanged; the shape of an entry is described in
        :mod:`cxone_sandbox.app`.
        """
        return list(self._admin("GET", "journal"))

    def journal_dropped(self) -> int:
        """How many entries the journal dropped since the last clear or reset, the oldest first, to
        keep ``journal_size`` (``GET /_sandbox/journal``'s ``X-Sandbox-Journal-Dropped`` header)."""
        return int(self._admin_response("GET", "journal").headers[JOURNAL_DROPPED_HEADER])

    def clear_journal(self) -> None:
        """Empty the journal."""
        self._admin("DELETE", "journal")

    def state(self) -> dict[str, Any]:
        """Agents, sessions with their joins, supervise actions and counters (no secrets)."""
        return dict(self._admin("GET", "state"))

    def reset(self) -> None:
        """Back to the seed state and the starting faults, with an empty journal; tokens are revoked.

        A reset tenant has a new rate budget: what this process's pacers learnt of the old one is forgotten.
        """
        self._admin("POST", "reset")
        forget_pacers()

    def set_agent_state(self, agent_id: int, state: str) -> dict[str, Any]:
        """Change an agent's state as the agent would (``PUT /_sandbox/agents/{agent_id}/state``).

        ``LoggedOut`` logs them out and ends their session; any other state logs them in first.
        Returns their ``agents/states`` row.
        """
        return dict(self._admin("PUT", f"agents/{int(agent_id)}/state", {"state": state}))


# The fixtures exist only inside a pytest run, which has imported pytest before it loads this module as a
# plugin (``pytest_plugins = ["cxone_provider.testing"]`` or ``-p cxone_provider.testing``). Elsewhere
# nothing imports pytest: Airflow's plugin loader imports this file in every scheduler, dag-processor,
# api-server and task process when the package is dropped into a plugins folder, installed pytest or not.
if "pytest" in sys.modules:
    import pytest

    @pytest.fixture(scope="session")
    def cxone_sandbox_server() -> Iterator[SandboxServer]:
        """One CXone sandbox for the whole test session."""
        with SandboxServer() as server:
            yield server

    @pytest.fixture
    def cxone_sandbox(cxone_sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
        """The session's sandbox, reset to its seed, with ``AIRFLOW_CONN_CXONE_DEFAULT`` pointing at it."""
        cxone_sandbox_server.reset()
        name, value = cxone_sandbox_server.connection_env()
        monkeypatch.setenv(name, value)  # undone by monkeypatch after the test
        yield cxone_sandbox_server
        # Faults a test set must not leak into the next user of the session's server.
        cxone_sandbox_server.reset()
