"""SetSecurityUserOperator: Studio's *SetSecurityUser* — choose and check the agent the API acts as."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cxone_provider.compat import AirflowFailException
from cxone_provider.domain.classification import ROUTE_NOT_FOUND, is_route_not_found
from cxone_provider.domain.inputs import check_agent_id
from cxone_provider.domain.security_user import SecurityUser
from cxone_provider.domain.timezones import resolve_time_zone
from cxone_provider.hooks.cxone import CxoneApiError, CxoneHook
from cxone_provider.operators.base import CxoneBaseOperator, cxone_template_fields

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class SetSecurityUserOperator(CxoneBaseOperator):
    """Check that an agent exists and is active, and return it as the SecurityUser for later joins.

    The XCom ``return_value`` is the SecurityUser mapping, e.g.
    ``{"agent_id": 1001, "conn_id": "cxone_default", "time_zone": "UTC", "name": "Quinn Supervisor"}``.
    It never holds a token or a secret: XCom is stored in plain text, so each task that calls CXone
    requests its own token from the connection.

    An unknown or inactive agent fails the task with a message naming the agent id and the reason;
    so do a refused access key and an unusable connection, without retries. No answer, or a 5xx after
    the hook's retries, is left to Airflow's retries (:mod:`cxone_provider.operators.base`).

    .. seealso:: ``docs/operators.md``.

    :param agent_id: the agent (employee profile) whose security profile the API calls use. (templated)
    :param time_zone: time zone for the SecurityUser, as an IANA name, a Windows id ("Mountain Standard
        Time") or a CXone display name ("(GMT-07:00) Arizona"); defaults to the agent's own. It becomes an
        IANA name; one that cannot be read becomes UTC with a warning in the task log. (templated)
    :param cxone_conn_id: the ``cxone`` connection whose access key impersonates the agent. (templated)
    :param hook_params: extra keyword arguments for :class:`~cxone_provider.hooks.cxone.CxoneHook`.
    """

    template_fields: Sequence[str] = cxone_template_fields("agent_id", "time_zone")
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        agent_id: int | str,
        time_zone: str | None = None,
        cxone_conn_id: str = CxoneHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(cxone_conn_id=cxone_conn_id, hook_params=hook_params, **kwargs)
        self.agent_id = agent_id
        self.time_zone = time_zone

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            with self.cxone_failures("SetSecurityUser"):
                return self._set_security_user()
        finally:
            self.close_hooks()

    def _set_security_user(self) -> dict[str, Any]:
        agent_id = check_agent_id(self.agent_id)
        try:
            agent = self.hook.get_agent(agent_id)
        except CxoneApiError as error:
            if is_route_not_found(error.response):
                # Not an answer about the agent: the URL is wrong (a mistyped api_base_url or api_version).
                raise AirflowFailException(f"SetSecurityUser: {ROUTE_NOT_FOUND} ({error.response.message})") from None
            if error.http_status in (400, 404):
                raise AirflowFailException(
                    f"SetSecurityUser: agent_id {agent_id} is not a CXone agent ({error.response.message})"
                ) from None
            raise
        name = " ".join(str(agent[k]) for k in ("firstName", "lastName") if agent.get(k)) or None
        if not agent.get("isActive", False):
            raise AirflowFailException(
                f"SetSecurityUser: agent_id {agent_id} ({name or 'no name'}) is not an active CXone agent"
            )
        # CXone writes Windows display names ("(GMT-05:00) Eastern Time (US & Canada)"); a time zone
        # that cannot be read is UTC with a warning, never a failed task.
        given = self.time_zone if self.time_zone not in (None, "") else agent.get("timeZone")
        resolved = resolve_time_zone(given)
        if resolved.warning:
            self.log.warning("SetSecurityUser: agent %s: %s", agent_id, resolved.warning)
        time_zone = resolved.name
        user = SecurityUser(agent_id=agent_id, conn_id=self.hook_conn_id, time_zone=time_zone, name=name)
        self.keep_run_facts("agents")  # for OpenLineage: the tenant's agents were read (no names kept)
        self.log.info("SecurityUser is agent %s (%s), time zone %s", agent_id, name, time_zone)
        return user.to_xcom()
