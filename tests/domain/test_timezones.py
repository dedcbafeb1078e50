"""CXone's time zones (IANA names, Windows ids, Windows display names) as IANA zones, and SetSecurityUser
reading them from real-looking agent records."""

from __future__ import annotations

import datetime as dt

import pytest
from tzlocal.windows_tz import win_tz

from cxone_provider.domain.timezones import DISPLAY_NAMES, load_time_zone, resolve_time_zone
from cxone_provider.testing import SandboxServer
from cxone_sandbox import default_seed

RESOLVED = [
    # display names as CXone's agent records carry them (both Windows eras)
    pytest.param("(GMT-07:00) Arizona", "America/Phoenix", "display-name", id="gmt-arizona"),
    pytest.param("(GMT-05:00) Eastern Time (US & Canada)", "America/New_York", "display-name", id="gmt-eastern"),
    pytest.param("(UTC-07:00) Mountain Time (US & Canada)", "America/Denver", "display-name", id="utc-mountain"),
    pytest.param("(GMT-06:00) Central Time(US and Canada)", "America/Chicago", "display-name", id="spacing-and-and"),
    pytest.param(
        "(GMT-08:00) Pacific Time (US & Canada); Tijuana", "America/Los_Angeles", "display-name", id="xp-semicolon"
    ),
    pytest.param(
        "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna", "Europe/Berlin", "display-name", id="utc-berlin"
    ),
    pytest.param(
        "(UTC+05:30) Chennai, Kolkata, Mumbai, New Delhi", "Asia/Calcutta", "display-name", id="utc+05:30-india"
    ),
    pytest.param("(UTC+05:45) Kathmandu", "Asia/Katmandu", "display-name", id="utc+05:45"),
    pytest.param("(UTC) Coordinated Universal Time", "Etc/UTC", "display-name", id="utc-no-offset"),
    pytest.param(
        "(GMT) Greenwich Mean Time : Dublin, Edinburgh, Lisbon, London",
        "Europe/London",
        "display-name",
        id="gmt-london",
    ),
    pytest.param("(UTC-07:00) Mountain Standard Time", "America/Denver", "display-name", id="name-part-is-windows-id"),
    # Windows ids, as GET timezones lists them (standardName)
    pytest.param("Mountain Standard Time", "America/Denver", "windows", id="windows-mountain"),
    pytest.param("US Mountain Standard Time", "America/Phoenix", "windows", id="windows-arizona"),
    pytest.param("india standard time", "Asia/Calcutta", "windows", id="windows-any-case"),
    # IANA names, as UserHub writes them
    pytest.param("America/Denver", "America/Denver", "iana", id="iana"),
    pytest.param("  america/denver ", "America/Denver", "iana", id="iana-any-case"),
    pytest.param("UTC", "UTC", "iana", id="iana-utc"),
    # unknown name part: the offset, with POSIX's inverted sign, or a fixed offset
    pytest.param("(GMT-05:00) Somewhere New", "Etc/GMT+5", "offset", id="offset-behind-utc"),
    pytest.param("(UTC+03:00) Somewhere New", "Etc/GMT-3", "offset", id="offset-ahead-of-utc"),
    pytest.param("(UTC+05:30) Somewhere New", "+05:30", "offset", id="offset-half-hour"),
    pytest.param("(GMT+00:00) Somewhere New", "Etc/GMT", "offset", id="offset-zero"),
    # anything else: UTC with a warning
    pytest.param("garbage", "UTC", "fallback", id="garbage"),
    pytest.param("../../etc/passwd", "UTC", "fallback", id="path"),
    pytest.param("(UTC+15:00) Nowhere", "UTC", "fallback", id="offset-out-of-range"),
    pytest.param(None, "UTC", "fallback", id="None"),
    pytest.param("", "UTC", "fallback", id="empty"),
    pytest.param("   ", "UTC", "fallback", id="blank"),
    pytest.param(-420, "UTC", "fallback", id="a-number"),
    pytest.param("x" * 1000, "UTC", "fallback", id="too-long"),
]


@pytest.mark.parametrize(("value", "name", "source"), RESOLVED)
def test_resolve_time_zone(value, name, source):
    resolved = resolve_time_zone(value)
    assert (resolved.name, resolved.source) == (name, source)
    # Only a guess (an offset) or a fallback is worth a warning in the task log.
    assert (resolved.warning is not None) == (source in ("offset", "fallback"))
    assert load_time_zone(resolved.name) is not None


def test_an_offset_zone_has_the_display_names_offset():
    moment = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
    for text, hours in (("(GMT-05:00) Somewhere", -5), ("(UTC+05:30) Somewhere", 5.5), ("(UTC+14:00) Far", 14)):
        zone = load_time_zone(resolve_time_zone(text).name)
        assert moment.astimezone(zone).utcoffset() == dt.timedelta(hours=hours), text


def test_every_display_name_maps_to_a_windows_id_of_cldrs_table():
    unknown = {name: windows for name, windows in DISPLAY_NAMES.items() if windows not in win_tz}
    assert not unknown
    for name, windows in DISPLAY_NAMES.items():
        resolved = resolve_time_zone(f"(UTC+00:00) {name}")
        assert (resolved.source, resolved.name) == ("display-name", win_tz[windows]), name


def test_the_warning_names_the_value():
    assert "'garbage'" in (resolve_time_zone("garbage").warning or "")
    assert "Etc/GMT+5" in (resolve_time_zone("(GMT-05:00) Somewhere").warning or "")


# --- SetSecurityUser on agent records with CXone's time zones -----------------------------------------


@pytest.fixture(scope="module")
def display_name_sandbox():
    seed = default_seed()
    zones = {1001: "(GMT-07:00) Arizona", 1002: "not a time zone"}
    for agent in seed["agents"]:
        agent["time_zone"] = zones.get(agent["agent_id"], agent.get("time_zone"))
    with SandboxServer(seed=seed) as server:
        yield server


@pytest.fixture
def sandbox(display_name_sandbox, monkeypatch):
    name, value = display_name_sandbox.connection_env()
    monkeypatch.setenv(name, value)
    display_name_sandbox.clear_journal()
    return display_name_sandbox


def _set_security_user(agent_id, **kwargs):
    from cxone_provider.operators.security_user import SetSecurityUserOperator

    return SetSecurityUserOperator(task_id="set_user", agent_id=agent_id, **kwargs).execute(context={})


def test_set_security_user_reads_a_display_name_time_zone(sandbox):
    user = _set_security_user(1001)
    assert user["time_zone"] == "America/Phoenix"
    assert any(e["path"].endswith("agents/1001") for e in sandbox.journal())


def test_set_security_user_takes_a_windows_id_given_as_argument(sandbox):
    assert _set_security_user(1001, time_zone="Mountain Standard Time")["time_zone"] == "America/Denver"


def test_an_unreadable_time_zone_is_utc_with_a_warning_not_a_failed_task(sandbox, capfd):
    user = _set_security_user(1002)
    assert user["time_zone"] == "UTC"
    log = "".join(capfd.readouterr())
    assert "time zone 'not a time zone' is neither an IANA name" in log
    assert "using UTC" in log


def test_without_tzlocal_the_module_imports_and_display_names_map_by_offset():
    """Dropped into a plugins folder of an Airflow without tzlocal: no import error, no failed task."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys
        sys.modules["tzlocal"] = None  # as if it were not installed
        sys.modules["tzlocal.windows_tz"] = None
        from cxone_provider.domain.timezones import resolve_time_zone
        for value in ("(GMT-05:00) Eastern Time (US & Canada)", "Mountain Standard Time", "America/Denver"):
            r = resolve_time_zone(value)
            print(r.name, r.source, bool(r.warning and "tzlocal" in r.warning), sep="|")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "Etc/GMT+5|offset|True",
        "UTC|fallback|True",
        "America/Denver|iana|False",
    ]
