"""ListAgentSessionsOperator: the logged-in agents a QA sweep checks (``GET agents/states``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cxone_provider.compat import AirflowFailException
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.base import CxoneBaseOperator, cxone_template_fields
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
    """The logged-in agents of ``agents/states`` (every state but LoggedOut), as sweep items.

    Each is ``{"agent_id", "team_id", "agent_state"}``: CXone's published state rows carry no session
    id, and a sweep item without one is checked against the agent's live session, whatever its id.
    A row that does carry a ``sessionId`` (the sandbox's ``states_session_id`` extension) adds it as
    ``session_id``, the session the sweep then expects.
    """
    teams = {int(t) for t in team_ids} if team_ids else None
    states = {s.lower() for s in agent_state_names} if agent_state_names else None
    agents = []
    for state in agent_states:
        name = str(state.get("agentStateName", ""))
        if name.lower() == "loggedout":
            continue
        if teams is not None and state.get("teamId") not in teams:
            continue
        if states is not None and name.lower() not in states:
            continue
        item: dict[str, Any] = {
            "agent_id": state.get("agentId"),
            "team_id": state.get("teamId"),
            "agent_state": state.get("agentStateName"),
        }
        if state.get("sessionId"):
            item["session_id"] = str(state["sessionId"])
        agents.append(item)
    return agents


def whole_numbers(field_name: str, values: list[Any] | None) -> list[int]:
    """``values`` as ints (``[]`` for ``None``); a bad input fails the task naming the field and the value."""
    numbers = []
    for value in values or []:
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            numbers.append(int(value))
        except (TypeError, ValueError):
            raise AirflowFailException(f"{field_name} must hold whole numbers, got {value!r:.80}") from None
    return numbers


class ListAgentSessionsOperator(CxoneBaseOperator):
    """List the logged-in agents (``GET agents/states``) a QA sweep checks.

    Returns ``[{"agent_id", "team_id", "agent_state"}, ...]``, one item per logged-in agent: feed
    ``.output`` to :class:`~cxone_provider.operators.sweep.JoinAgentSessionsOperator`'s ``agents``. The
    same list is pushed under the XCom key ``sessions`` too.

    The three filters are list fields (templated): a list, a rendered JSON or Python list (``"[...]"``) or
    comma-separated text (the rule of :func:`~cxone_provider.domain.inputs.parse_list`), e.g.
    ``"Available,Unavailable"``.

    :param team_ids: keep only these teams (templated).
    :param agent_state_names: keep only agents in these states, e.g. ``["Available"]`` (templated).
    :param exclude_agent_ids: leave these agents out, e.g. the supervisor's own (templated).
    :param cxone_conn_id: the ``cxone`` connection. (templated)
    :param hook_params: extra keyword arguments for :class:`~cxone_provider.hooks.cxone.CxoneHook`.

    A bad filter (an id that is not a whole number, a value that is not a list), a refused access key
    or an unusable connection fails the task without retries; no answer, or a 5xx after the hook's
    retries, is left to Airflow's retries (:mod:`cxone_provider.operators.base`).
    """

    template_fields: Sequence[str] = cxone_template_fields("team_ids", "agent_state_names", "exclude_agent_ids")

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
        super().__init__(cxone_conn_id=cxone_conn_id, hook_params=hook_params, **kwargs)
        self.team_ids = team_ids
        self.agent_state_names = agent_state_names
        self.exclude_agent_ids = exclude_agent_ids

    def execute(self, context: Context) -> list[dict[str, Any]]:
        # Every list is read before the call: a bad one fails the task with nothing sent.
        team_ids = whole_numbers("team_ids", as_list("team_ids", self.team_ids))
        excluded = set(whole_numbers("exclude_agent_ids", as_list("exclude_agent_ids", self.exclude_agent_ids)))
        state_names = [str(s) for s in as_list("agent_state_names", self.agent_state_names) or []]
        try:
            with self.cxone_failures("ListAgentSessions"):
                agent_states = self.hook.get_agent_states()
        finally:
            self.close_hooks()
        agents = live_sessions(
            agent_states,
            team_ids=team_ids or None,
            agent_state_names=state_names or None,
        )
        agents = [a for a in agents if a["agent_id"] not in excluded]
        self.log.info("%d logged-in agent(s) to sweep", len(agents))
        context["ti"].xcom_push(key="sessions", value=agents)
        return agents
