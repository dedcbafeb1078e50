"""What every CXone task shares: its connection, its hooks, stopping, and one failure policy.

:class:`CxoneBaseOperator` is the base of the CXone operators; the sensors, which must derive from
``BaseSensorOperator``, take the same part from :class:`CxoneTaskMixin`. The shape follows the official
providers' (amazon's ``AwsBaseOperator``, slack's ``SlackAPIOperator``): the connection id and
``hook_params`` stored as given, a ``hook`` built on first use and cached, never at parse time.

The failure policy (:func:`fails_fast`), the same for every CXone task:

=====================================================  =============================================
what happened                                          what the task does
=====================================================  =============================================
an answer of a join (the conditions of                 becomes the result condition, routed as
``docs/conditions.md``: InvalidAgentSession,           Studio does (the join, the sweep): never an
InvalidSecurityUser…, ``Default`` for no answer)       exception of its own
a bad input no retry can fix (a malformed id, an       fails at once, no retry
unknown state name, a list that is not one)            (``AirflowFailException``), naming the field
an unusable connection (``CxoneConfigError``), a        fails at once, no retry
wiring error (``BranchConfigError``,
``ConditionRulesError``)
a refused access key or application                    fails at once, no retry
(``CxoneAuthError.refused``)
an error answer that asking again cannot change        fails at once, no retry
(a 4xx other than 408 and 429: an unknown agent, a
wrong route, a missing permission)
no answer, a 408, a 429 or a 5xx after the hook's       raised as it is: Airflow retries the task
own retries; a token endpoint that is down              (``retries``), which is what they are for
=====================================================  =============================================
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from cxone_provider.assets import is_outlet_alias, outlet_alias
from cxone_provider.compat import AirflowFailException, needs_airflow
from cxone_provider.domain.conditions import InputRejected
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError, CxoneConfigError, CxoneError, UnsafePathIdError
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.lineage import RunFacts, operator_lineage

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow.sdk import Context

#: Error answers a later try may get another answer to: a timeout and throttling. 5xx are retried too.
RETRYABLE_STATUSES = frozenset({408, 429})

#: Asset events go through an outlet alias (the tenant is known only when the task runs); Airflow 3.0
#: fails such a task (docs/airflow-versions.md), so below 3.1 no alias is declared and no event sent.
ASSET_EVENTS = "Asset events from CXone tasks"
ASSET_EVENTS_NEED = "Airflow 3.0's execution API fails a task whose outlet alias carries an event"


def fails_fast(error: BaseException) -> bool:
    """Whether ``error`` must fail the task without Airflow's retries (see the module's table)."""
    if isinstance(error, AirflowFailException | InputRejected | UnsafePathIdError | CxoneConfigError):
        return True
    if isinstance(error, CxoneAuthError):
        return error.refused
    if isinstance(error, CxoneApiError):
        status = error.http_status
        return status is not None and 400 <= status < 500 and status not in RETRYABLE_STATUSES
    return False


def cxone_template_fields(*fields: str) -> tuple[str, ...]:
    """A CXone task's ``template_fields``: its own, then the connection id (templated in every one)."""
    return (*fields, "cxone_conn_id")


class CxoneTaskMixin:
    """The part every CXone task shares; see :class:`CxoneBaseOperator`.

    A class using it calls :meth:`_init_cxone` from its ``__init__``; its work runs inside
    ``with self.cxone_failures(label):`` (the failure policy) and ends with :meth:`close_hooks`.
    """

    cxone_conn_id: str | None
    hook_params: dict[str, Any]
    log: Any  # BaseOperator's task logger

    def _init_cxone(self, cxone_conn_id: str | None, hook_params: dict[str, Any] | None) -> None:
        self.cxone_conn_id = cxone_conn_id
        self.hook_params = dict(hook_params or {})

    # --- hooks -------------------------------------------------------------------------------------

    @property
    def hook_conn_id(self) -> str:
        """The connection the cached :attr:`hook` uses: ``cxone_conn_id``, else ``cxone_default``."""
        return self.cxone_conn_id or CxoneHook.default_conn_name

    @cached_property
    def hook(self) -> CxoneHook:
        """One hook, so one token and one pool of connections, for the whole execution."""
        return self.make_hook()

    def make_hook(self, conn_id: str | None = None, **options: Any) -> CxoneHook:
        """A hook on ``conn_id`` (default :attr:`hook_conn_id`) with ``hook_params``, then ``options``.

        Every hook made here stops sending once :meth:`on_kill` runs and is closed by :meth:`close_hooks`.
        A task whose connection comes from its input (a join's SecurityUser) makes its hook here.
        """
        params: dict[str, Any] = {"stop": self._stop_event, **self.hook_params, **options}
        hook = CxoneHook(conn_id or self.hook_conn_id, **params)
        self.__dict__.setdefault("_cxone_hooks", []).append(hook)
        return hook

    @property
    def _stop_event(self) -> threading.Event:
        # Made on first use, in the process that runs the task: an Event cannot be copied with the task.
        event: threading.Event | None = self.__dict__.get("_cxone_stop")
        if event is None:
            event = self.__dict__["_cxone_stop"] = threading.Event()
        return event

    def close_hooks(self) -> None:
        """Close every hook this execution made; the next execution (a retry) starts afresh."""
        hooks: list[CxoneHook] = self.__dict__.pop("_cxone_hooks", [])
        self.__dict__.pop("hook", None)
        self.__dict__.pop("_cxone_stop", None)
        for hook in hooks:
            hook.close()

    def on_kill(self) -> None:
        """Stop sending: a call in flight ends, no attempt or backoff follows (``CxoneStopped``)."""
        event: threading.Event | None = self.__dict__.get("_cxone_stop")
        if event is not None:
            self.log.warning("Stopping on request: no further CXone request is sent")
            event.set()

    # --- what the run learnt: lineage and assets ----------------------------------------------------

    def keep_run_facts(self, read: str, counts: dict[str, int] | None = None, report: Any = None) -> None:
        """Remember what this run learnt of its tenant, from its latest hook, for
        :meth:`get_openlineage_facets_on_complete` and :meth:`add_asset_event`. Sends nothing; a run
        that made no hook (its input was refused before any call) has nothing to remember."""
        hooks: list[CxoneHook] = self.__dict__.get("_cxone_hooks") or []
        if hooks:
            self.__dict__["_cxone_run_facts"] = RunFacts.of(hooks[-1], read, counts, report)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage's facets of this run (:func:`~cxone_provider.lineage.operator_lineage`): the tenant
        read, the report written, the counts per condition; ``None`` without the ``[openlineage]`` extra."""
        return operator_lineage(self.__dict__.get("_cxone_run_facts"))

    def add_asset_event(self, context: Context, kind: str, extra: dict[str, Any]) -> None:
        """Add this run's event, with ``extra``, to its tenant's Asset through the outlet alias of
        :func:`~cxone_provider.assets.outlet_alias` (declared when the DAG was parsed)."""
        facts: RunFacts | None = self.__dict__.get("_cxone_run_facts")
        alias = next((o for o in self.outlets if is_outlet_alias(o, kind)), None)  # type: ignore[attr-defined]
        ti, outlet_events = context.get("ti"), context.get("outlet_events")
        if facts is None or alias is None or ti is None or outlet_events is None:
            return  # nothing learnt, no asset declared, or not a task run (a test calling execute)
        asset = facts.asset(kind, ti.dag_id, ti.task_id)
        if getattr(ti, "map_index", -1) >= 0:
            # Parallel chunks naming a not-yet-registered Asset through an alias each make Airflow insert
            # it: on PostgreSQL all but one fail the unique constraint and their tasks fail (seen with four
            # Celery chunks). One event per mapped sweep would need a step after the merge; none is sent.
            self.log.info("No asset event from a mapped chunk (map index %s) for %s", ti.map_index, asset.uri)
            return
        outlet_events[alias].add(asset, extra=extra)
        self.log.info("Asset event for %s: %s", asset.uri, extra.get("counts"))

    def declare_asset(self, kind: str) -> None:
        """Declare the outlet alias through which :meth:`add_asset_event` names this task's Asset."""
        if not needs_airflow(ASSET_EVENTS, "3.1.0", ASSET_EVENTS_NEED):
            return  # no alias, so add_asset_event adds nothing and the task runs as on 3.1+
        self.outlets.append(outlet_alias(kind, self.dag_id, self.task_id))  # type: ignore[attr-defined]

    # --- the failure policy ------------------------------------------------------------------------

    @contextmanager
    def cxone_failures(self, label: str) -> Iterator[None]:
        """Apply the failure policy to what escapes the block: what no retry can fix fails the task
        at once, as ``AirflowFailException`` naming ``label`` (the task's kind) and the cause."""
        try:
            yield
        except AirflowFailException:
            raise
        except (InputRejected, CxoneError) as error:
            if not fails_fast(error):
                raise
            message = error.message if isinstance(error, InputRejected) else str(error)
            raise AirflowFailException(f"{label}: {message}") from None


class CxoneBaseOperator(CxoneTaskMixin, BaseOperator):
    """Base of the CXone operators: the connection, the hook, ``on_kill`` and one failure policy.

    The failure policy (the table in :mod:`cxone_provider.operators.base`): what no retry can fix — a
    bad input, an unusable connection, a refused access key, an error answer other than 408, 429 and
    5xx — fails the task at once, without Airflow's retries; no answer, throttling, a 5xx after the
    hook's own retries, or a token endpoint that is down is raised for Airflow to retry; a join's
    answers become its result conditions (Studio's semantics), never exceptions.

    .. seealso:: ``docs/retries.md`` and ``docs/operators.md`` (Routing).

    :param cxone_conn_id: the ``cxone`` connection. (templated)
    :param hook_params: extra keyword arguments for :class:`~cxone_provider.hooks.cxone.CxoneHook`
        (``max_attempts``, ``backoff_initial_s``, ``max_wait_s``…).
    """

    template_fields: Sequence[str] = cxone_template_fields()

    def __init__(
        self,
        *,
        cxone_conn_id: str | None = CxoneHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_cxone(cxone_conn_id, hook_params)
