"""The Airflow names that moved between the versions we support (3.0.6 to 3.3), in one place.

Every other module imports these names from here, never straight from where one version keeps them.
Airflow 3.2 (Task SDK 1.2) made ``airflow.sdk`` the home of the exceptions, ``conf``,
``BaseBranchOperator`` and ``TaskInstanceKey``; 3.1 had moved ``BaseHook`` and the secret masker
(whose ``redact`` the tests hold our own redaction to). Before that they live
where Airflow 3.0 keeps them (``airflow.exceptions``, ``airflow.configuration``, the standard provider,
``airflow.models``), and the task runner of those versions catches exactly those classes.

Why not ``apache-airflow-providers-common-compat``'s ``sdk`` module: it maps the same names, but first
shipped in common-compat 1.8.0 while Airflow 3.0.6 asks only for >=1.6.0, so requiring it could conflict
with the constraints a 3.0 deployment installs Airflow with.

A feature an older Airflow cannot offer says so once with :func:`needs_airflow` instead of failing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow import __version__ as _airflow_version
from packaging.version import Version

if TYPE_CHECKING:
    from airflow.sdk import Connection

AIRFLOW_VERSION = Version(Version(_airflow_version).base_version)
AIRFLOW_V_3_1_PLUS = Version("3.1.0") <= AIRFLOW_VERSION
AIRFLOW_V_3_2_PLUS = Version("3.2.0") <= AIRFLOW_VERSION

# mypy reads the newest Airflow's names (the first branch); the others are checked by the tests that
# run on each version (scripts/airflow_versions.py).
if TYPE_CHECKING or AIRFLOW_V_3_2_PLUS:
    from airflow.sdk import BaseBranchOperator, BaseHook, conf
    from airflow.sdk._shared.secrets_masker import redact
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
    from airflow.sdk.types import TaskInstanceKey
else:
    from airflow.configuration import conf
    from airflow.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, AirflowSkipException
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.providers.standard.operators.branch import BaseBranchOperator

    if AIRFLOW_V_3_1_PLUS:
        from airflow.sdk import BaseHook
        from airflow.sdk._shared.secrets_masker import redact
    else:
        from airflow.hooks.base import BaseHook
        from airflow.sdk.execution_time.secrets_masker import redact

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseBranchOperator",
    "BaseHook",
    "TaskInstanceKey",
    "aget_connection",
    "conf",
    "needs_airflow",
    "redact",
    "usable_sensor_mode",
]

log = logging.getLogger(__name__)
_said: set[str] = set()


def needs_airflow(feature: str, version: str, why: str) -> bool:
    """Whether the running Airflow is at least ``version``; if not, log once that ``feature`` is off."""
    if Version(version) <= AIRFLOW_VERSION:
        return True
    if feature not in _said:
        _said.add(feature)
        log.warning(
            "CXone: %s needs Airflow %s or newer (%s); this is Airflow %s", feature, version, why, AIRFLOW_VERSION
        )
    return False


def usable_sensor_mode(mode: str) -> str:
    """``mode``, or ``"poke"`` for ``"reschedule"`` below 3.1: Airflow 3.0's sensor base fails every
    rescheduled try (it subtracts the first try's start date, which its execution API hands over as text)."""
    if mode == "reschedule" and not needs_airflow(
        "mode='reschedule' for CXone sensors", "3.1.0", "Airflow 3.0 fails every rescheduled sensor try; poking instead"
    ):
        return "poke"
    return mode


async def aget_connection(conn_id: str) -> Connection:
    """A connection looked up from async code (a trigger): ``BaseHook.aget_connection`` since Airflow 3.1;
    before, the sync lookup in a worker thread, as Airflow's own providers did on 3.0."""
    if AIRFLOW_V_3_1_PLUS:
        return await BaseHook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)
