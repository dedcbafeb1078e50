"""The sensors' ``deferrable`` default follows ``[operators] default_deferrable``, as Airflow's own do.

Airflow reads the setting when the sensor's module is imported (the default is bound then, as in
Airflow's own operators), so each setting is tried in a fresh interpreter with the environment a
deployment would set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SENSORS = {
    "AgentStateSensor": (
        "cxone_provider.sensors.agent_state",
        "AgentStateSensor(task_id='wait', agent_id=1001, states=['Available'])",
    ),
    "AgentSessionEventSensor": (
        "cxone_provider.sensors.session_events",
        "AgentSessionEventSensor(task_id='follow', session_id='sess-1001')",
    ),
}

PROBE = """
import importlib, inspect, json, sys
out = {}
for name, (module, build) in json.loads(sys.argv[1]).items():
    cls = getattr(importlib.import_module(module), name)
    default = inspect.signature(cls.__init__).parameters["deferrable"].default
    built = eval(build, {name: cls}).deferrable  # the default as a DAG author gets it
    out[name] = [default, built]
print(json.dumps(out))
"""


def sensor_defaults(setting: str | None) -> dict[str, list[bool]]:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"}
    if setting is not None:
        env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = setting
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(SENSORS)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return json.loads(probe.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("setting", "expected"), [("True", True), ("False", False), (None, False)])
def test_the_sensors_deferrable_default_follows_operators_default_deferrable(setting, expected):
    defaults = sensor_defaults(setting)
    assert defaults == {name: [expected, expected] for name in SENSORS}
