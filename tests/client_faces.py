"""The client's two faces behind one blocking interface, so that a test about the client runs on both.

``sync`` is the hook itself (requests); ``async`` is :class:`~cxone_provider.client.async_api.AsyncCxoneClient`
(httpx) built from the same hook's settings and options, driven in an event loop of its own. Each
method does what the hook's method of the same name does; nothing here decides anything.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from cxone_provider.client.async_api import AsyncCxoneClient
from cxone_provider.client.policy import RETRY_POLICY

if TYPE_CHECKING:
    from cxone_provider.hooks.cxone import CxoneHook
    from cxone_provider.response import ApiResponse

FACES = ("sync", "async")
JOIN = "agent-sessions/join"


class SyncFace:
    name = "sync"

    def __init__(self, hook: CxoneHook) -> None:
        self.hook = hook

    @property
    def client(self) -> Any:
        return self.hook.client

    def access_token(self) -> str:
        return self.hook.access_token()

    def api_base_url(self) -> str:
        return self.hook.api_base_url

    def renew_token(self, stale: str) -> None:
        self.hook.client.auth.renew_token(stale=stale)

    def join(self, session_id: str = "sess-1", agent_id: int = 1001) -> ApiResponse:
        return self.hook.join_session(session_id, as_agent_id=agent_id)

    def agent_states(self) -> list[dict[str, Any]]:
        return self.hook.get_agent_states()

    def close(self) -> None:
        self.hook.close()


class AsyncFace:
    name = "async"

    def __init__(self, hook: CxoneHook) -> None:
        self.loop = asyncio.new_event_loop()
        self.client: AsyncCxoneClient = self.run(AsyncCxoneClient.open(hook.settings, hook.options, log=hook.log))

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def access_token(self) -> str:
        return self.run(self.client.auth.access_token())

    def api_base_url(self) -> str:
        return self.run(self.client.auth.api_base_url())

    def renew_token(self, stale: str) -> None:
        self.run(self.client.auth.renew_token(stale=stale))

    def join(self, session_id: str = "sess-1", agent_id: int = 1001) -> ApiResponse:
        params = {"asAgentId": agent_id, "sessionId": session_id}
        action = f"join session {session_id!r} as agent {agent_id}"
        return self.run(self.client.request(action, "POST", JOIN, params=params, retry_when=RETRY_POLICY["join"]))

    def agent_states(self) -> list[dict[str, Any]]:
        return self.run(self.client.agent_states())

    def close(self) -> None:
        self.run(self.client.aclose())
        self.loop.close()
