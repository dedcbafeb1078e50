"""ListAgentSessionsOperator: the live agent sessions a QA sweep starts from (``GET agents/states``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from cxone_provider.exceptions import NoSessionIdsError
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.common import as_list

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


def live_sessions(
    agent_states: Sequence[dict[str, Any]],
    *,
    team_ids: Sequence[int] | None = None,
    agent_state_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The agents of ``agents/states`` that hold a session, optionally only some teams or states.

    ``sessionId`` is not among the published fields of a state row (the sandbox adds it): when rows
    match the filters but none carries one, this raises :class:`NoSessionIdsError` rather than
    returning an empty list that would look like a quiet contact centre.
    """
    teams = {int(t) for t in team_ids} if team_ids else None
    states = {s.lower() for s in agent_state_names} if agent_state_names else None
    sessions = []
    matched_without_session = 0
    for state in agent_states:
        if str(state.get("agentStateName", "")).lower() == "loggedout":
            continue
        if teams is not None and state.get("teamId") not in teams:
            continue
        if states is not None and str(state.get("agentStateName", "")).lower() not in states:
            continue
        session_id = state.get("sessionId")
        if not session_id:
            matched_without_session += 1
            continue
        sessions.append(
            {
                "session_id": str(session_id),
                "agent_id": state.get("agentId"),
                "team_id": state.get("teamId"),
                "agent_state": state.get("agentStateName"),
            }
        )
    if matched_without_session and not sessions:
        raise NoSessionIdsError(
            f"agents/states lists {matched_without_session} logged-in agent(s) matching the filters, but no row "
            "carries a sessionId (CXone's published agent state rows have none; only the sandbox adds it). "
            "Pass the session ids from another source to JoinAgentSessionsOperator(session_ids=…): an "
            "upstream task, a file or a query (README, section 'QA sweeps')."
        )
    return sessions


class ListAgentSessionsOperator(BaseOperator):
    """List the live agent sessions (``GET agents/states``) a QA sweep starts from.

    Returns the session ids (feed ``.output`` to :class:`JoinAgentSessionsOperator`) and pushes the
    details, ``[{"session_id", "agent_id", "team_id", "agent_state"}, ...]``, under the XCom key
    ``sessions``.

    :param team_ids: keep only these teams (templated).
    :param agent_state_names: keep only agents in these states, e.g. ``["Available"]`` (templated).
    :param exclude_agent_ids: leave these agents out, e.g. the supervisor's own session (templated).
    :param cxone_conn_id: the ``cxone`` connection. (templated)
    """

    template_fields: Sequence[str] = ("team_ids", "agent_state_names", "exclude_agent_ids", "cxone_conn_id")

    def __init__(
        self,
        *,
        team_ids: Sequence[int] | str | None = None,
        agent_state_names: Sequence[str] | str | None = None,
        exclude_agent_ids: Sequence[int] | str | None = None,
        cxone_conn_id: str = CxoneHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.team_ids = team_ids
        self.agent_state_names = agent_state_names
        self.exclude_agent_ids = exclude_agent_ids
        self.cxone_conn_id = cxone_conn_id
        self.hook_params = hook_params or {}

    def execute(self, context: Context) -> list[str]:
        team_ids = as_list("team_ids", self.team_ids)
        excluded = {int(a) for a in as_list("exclude_agent_ids", self.exclude_agent_ids) or []}
        with CxoneHook(self.cxone_conn_id, **self.hook_params) as hook:
            agent_states = hook.get_agent_states()
        sessions = live_sessions(
            agent_states,
            team_ids=[int(t) for t in team_ids] if team_ids else None,
            agent_state_names=[str(s) for s in as_list("agent_state_names", self.agent_state_names) or []] or None,
        )
        sessions = [s for s in sessions if s["agent_id"] not in excluded]
        self.log.info("%d live session(s) to sweep", len(sessions))
        context["ti"].xcom_push(key="sessions", value=sessions)
        return [s["session_id"] for s in sessions]
