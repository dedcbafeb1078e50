"""The sandbox's own routes under ``/_sandbox/``: faults, journal, state, reset and agents' states.

The raw ASGI layer (:mod:`cxone_sandbox.asgi`) checks the admin token before any of them
runs, and neither faults nor journals them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from fastapi import Request  # noqa: TC002 - FastAPI reads route annotations at run time
from fastapi.responses import JSONResponse, Response

from cxone_sandbox.answers import error_response
from cxone_sandbox.faults import Faults
from cxone_sandbox.params import ApiError, parse_agent_id
from cxone_sandbox.settings import JOURNAL_DROPPED_HEADER, JOURNAL_SIZE_HEADER

if TYPE_CHECKING:
    from cxone_sandbox.asgi import SandboxApp


def add_admin_routes(app: SandboxApp) -> None:
    """Add the ``/_sandbox/…`` routes to ``app``."""
    sb = app.sandbox

    @app.get("/_sandbox/faults")
    async def get_faults() -> JSONResponse:
        return JSONResponse(sb.injector.faults.to_dict())

    @app.put("/_sandbox/faults")
    async def put_faults(request: Request) -> JSONResponse:
        try:
            knobs = json.loads(await request.body() or b"{}")
            if not isinstance(knobs, dict):
                raise ValueError("the body must be a JSON object of fault knobs")
            sb.injector.configure(Faults.from_mapping(knobs))
        except ValueError as exc:
            return error_response(400, "InvalidFaults", str(exc))
        return JSONResponse(sb.injector.faults.to_dict())

    @app.get("/_sandbox/journal")
    async def get_journal() -> Response:
        # The bare list: the same shape SandboxServer.journal() returns; the ring's facts in headers.
        headers = {JOURNAL_DROPPED_HEADER: str(sb.journal_dropped), JOURNAL_SIZE_HEADER: str(sb.journal.maxlen)}
        return Response(sb.journal_json(), media_type="application/json", headers=headers)

    @app.delete("/_sandbox/journal")
    async def clear_journal() -> JSONResponse:
        return JSONResponse({"cleared": sb.clear_journal()})

    @app.get("/_sandbox/state")
    async def get_state() -> JSONResponse:
        snapshot = sb.state.snapshot()
        snapshot["inflight"] = sb.inflight
        return JSONResponse(snapshot)

    @app.put("/_sandbox/agents/{agent_id}/state")
    async def put_agent_state(agent_id: str, request: Request) -> JSONResponse:
        # What an agent does at their phone (log in, go Available, log out), for testing waits on it.
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return error_response(400, "InvalidState", 'the body must be JSON: {"state": "Available"}')
        if not isinstance(body, dict) or "state" not in body:
            return error_response(400, "InvalidState", 'the body must be a JSON object like {"state": "Available"}')
        try:
            row = sb.state.set_agent_state(parse_agent_id(agent_id), body["state"])
        except ApiError as exc:
            return error_response(exc.status, exc.error, exc.description)
        return JSONResponse(row)

    @app.post("/_sandbox/reset")
    async def reset() -> JSONResponse:
        sb.reset()
        return JSONResponse({"reset": True, "faults": sb.injector.faults.to_dict()})
