"""Time zones as CXone writes them: display names on agent records, Windows ids in ``GET timezones``.

CXone's agent records carry ``timeZone`` as a display name (``"(GMT-05:00) Eastern Time (US & Canada)"``)
and its ``GET timezones`` lists ``{displayName, standardName, offset}`` where ``standardName`` is the
Windows id (``"Eastern Standard Time"``); IANA names appear only in UserHub. A seed may give an agent's
zone in any of the three forms and the record serves it as given; :func:`resolve` finds the IANA zone
behind it, for ``timeZoneOffset``.

The table is the sandbox's own short list (a tenant lists about 140 zones); ``offset`` is the zone's
standard offset, ``"-05:00"`` (the published schema gives no format, so this is the sandbox's choice),
and ``timeZoneOffset`` on a record is the offset in effect now, daylight saving included.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Zone(NamedTuple):
    """One row of ``GET timezones``, with the IANA zone behind it."""

    standard_name: str  # the Windows id
    display_name: str
    iana: str


ZONES: Final[tuple[Zone, ...]] = (
    Zone("Dateline Standard Time", "(GMT-12:00) International Date Line West", "Etc/GMT+12"),
    Zone("Hawaiian Standard Time", "(GMT-10:00) Hawaii", "Pacific/Honolulu"),
    Zone("Alaskan Standard Time", "(GMT-09:00) Alaska", "America/Anchorage"),
    Zone("Pacific Standard Time", "(GMT-08:00) Pacific Time (US & Canada)", "America/Los_Angeles"),
    Zone("US Mountain Standard Time", "(GMT-07:00) Arizona", "America/Phoenix"),
    Zone("Mountain Standard Time", "(GMT-07:00) Mountain Time (US & Canada)", "America/Denver"),
    Zone("Central Standard Time", "(GMT-06:00) Central Time (US & Canada)", "America/Chicago"),
    Zone("Eastern Standard Time", "(GMT-05:00) Eastern Time (US & Canada)", "America/New_York"),
    Zone("Atlantic Standard Time", "(GMT-04:00) Atlantic Time (Canada)", "America/Halifax"),
    Zone("E. South America Standard Time", "(GMT-03:00) Brasilia", "America/Sao_Paulo"),
    Zone("UTC", "(GMT) Coordinated Universal Time", "UTC"),
    Zone("GMT Standard Time", "(GMT) Dublin, Edinburgh, Lisbon, London", "Europe/London"),
    Zone("W. Europe Standard Time", "(GMT+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna", "Europe/Berlin"),
    Zone("Romance Standard Time", "(GMT+01:00) Brussels, Copenhagen, Madrid, Paris", "Europe/Paris"),
    Zone("GTB Standard Time", "(GMT+02:00) Athens, Bucharest", "Europe/Bucharest"),
    Zone("South Africa Standard Time", "(GMT+02:00) Harare, Pretoria", "Africa/Johannesburg"),
    Zone("Israel Standard Time", "(GMT+02:00) Jerusalem", "Asia/Jerusalem"),
    Zone("Russian Standard Time", "(GMT+03:00) Moscow, St. Petersburg", "Europe/Moscow"),
    Zone("Arabian Standard Time", "(GMT+04:00) Abu Dhabi, Muscat", "Asia/Dubai"),
    Zone("India Standard Time", "(GMT+05:30) Chennai, Kolkata, Mumbai, New Delhi", "Asia/Kolkata"),
    Zone("Singapore Standard Time", "(GMT+08:00) Kuala Lumpur, Singapore", "Asia/Singapore"),
    Zone("Tokyo Standard Time", "(GMT+09:00) Osaka, Sapporo, Tokyo", "Asia/Tokyo"),
    Zone("AUS Eastern Standard Time", "(GMT+10:00) Canberra, Melbourne, Sydney", "Australia/Sydney"),
    Zone("New Zealand Standard Time", "(GMT+12:00) Auckland, Wellington", "Pacific/Auckland"),
)
_BY_NAME: Final = {
    name.casefold(): zone for zone in ZONES for name in (zone.standard_name, zone.display_name, zone.iana)
}
_GMT_OFFSET = re.compile(r"^\((?:GMT|UTC)(?:([+-])(\d{1,2}):(\d{2}))?\)")


def _format_offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def _display_offset(display_name: str) -> timedelta | None:
    match = _GMT_OFFSET.match(display_name.strip())
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    if sign is None:
        return timedelta(0)
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    return -delta if sign == "-" else delta


def resolve(name: str) -> ZoneInfo | None:
    """The IANA zone behind a CXone time zone in any of its forms (display name, Windows id, IANA)."""
    zone = _BY_NAME.get(name.strip().casefold())
    try:
        return ZoneInfo(zone.iana if zone is not None else name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def current_offset(name: str, at: datetime | None = None) -> str:
    """``timeZoneOffset`` of an agent record: the offset in effect ``at`` (default: now), ``"+00:00"``
    for a name it cannot place; a display name outside the table gives its own ``(GMT±hh:mm)``."""
    moment = at or datetime.now(UTC)
    zone = resolve(name)
    if zone is not None:
        return _format_offset(moment.astimezone(zone).utcoffset() or timedelta(0))
    delta = _display_offset(name)
    return _format_offset(delta if delta is not None else timedelta(0))


def timezone_rows() -> list[dict[str, str]]:
    """The rows of ``GET timezones``: ``displayName``, ``standardName`` (the Windows id) and ``offset``."""
    rows = []
    for zone in ZONES:
        delta = _display_offset(zone.display_name)
        rows.append(
            {
                "displayName": zone.display_name,
                "standardName": zone.standard_name,
                "offset": _format_offset(delta if delta is not None else timedelta(0)),
            }
        )
    return rows
