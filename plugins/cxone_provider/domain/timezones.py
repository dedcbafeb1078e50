"""CXone's time zones as IANA zones: the one place that reads an agent's ``timeZone``.

CXone writes time zones three ways (design.md, section 3 "time zones"): agent records carry Windows'
*display names* (``"(GMT-05:00) Eastern Time (US & Canada)"``, older tenants; ``"(UTC+01:00) Amsterdam,
Berlin, …"``, newer), ``GET timezones`` lists Windows *ids* (``"Mountain Standard Time"``), and only
UserHub speaks IANA. :func:`resolve_time_zone` maps each to an IANA zone, in this order:

1. an IANA name, as given (``"America/Denver"``; case-insensitive);
2. a Windows id, through CLDR's Windows→IANA table as ``tzlocal.windows_tz`` ships it;
3. a display name, by its name part: display name → Windows id (:data:`DISPLAY_NAMES`) → CLDR's table;
4. a display name with an unknown name part, by its offset: ``Etc/GMT±h`` for whole hours (POSIX
   inverts the sign: UTC-05:00 is ``Etc/GMT+5``), else a fixed offset such as ``"+05:30"``;
5. anything else: UTC, with a warning for the task log. A time zone never fails a task.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from dataclasses import dataclass
from typing import Literal

__all__ = ["DISPLAY_NAMES", "ResolvedTimeZone", "load_time_zone", "resolve_time_zone"]

Source = Literal["iana", "windows", "display-name", "offset", "fallback"]

#: Longest time zone text read; a display name is under 100 characters.
MAX_TIME_ZONE_CHARS = 200

# The name part of Windows' time zone display names (English, as Windows 10/11 and, for the US and
# European zones, Windows XP wrote them: CXone's records carry both eras) → the Windows id, whose IANA
# zone CLDR's table gives. Every id here must be a key of tzlocal's table (tests/domain/test_timezones.py).
DISPLAY_NAMES: dict[str, str] = {
    "International Date Line West": "Dateline Standard Time",
    "Coordinated Universal Time-11": "UTC-11",
    "Midway Island, Samoa": "UTC-11",
    "Aleutian Islands": "Aleutian Standard Time",
    "Hawaii": "Hawaiian Standard Time",
    "Marquesas Islands": "Marquesas Standard Time",
    "Alaska": "Alaskan Standard Time",
    "Coordinated Universal Time-09": "UTC-09",
    "Baja California": "Pacific Standard Time (Mexico)",
    "Tijuana, Baja California": "Pacific Standard Time (Mexico)",
    "Coordinated Universal Time-08": "UTC-08",
    "Pacific Time (US & Canada)": "Pacific Standard Time",
    "Pacific Time (US & Canada); Tijuana": "Pacific Standard Time",
    "Arizona": "US Mountain Standard Time",
    "Chihuahua, La Paz, Mazatlan": "Mountain Standard Time (Mexico)",
    "La Paz, Mazatlan": "Mountain Standard Time (Mexico)",
    "Mountain Time (US & Canada)": "Mountain Standard Time",
    "Yukon": "Yukon Standard Time",
    "Central America": "Central America Standard Time",
    "Central Time (US & Canada)": "Central Standard Time",
    "Easter Island": "Easter Island Standard Time",
    "Guadalajara, Mexico City, Monterrey": "Central Standard Time (Mexico)",
    "Saskatchewan": "Canada Central Standard Time",
    "Bogota, Lima, Quito, Rio Branco": "SA Pacific Standard Time",
    "Bogota, Lima, Quito": "SA Pacific Standard Time",
    "Chetumal": "Eastern Standard Time (Mexico)",
    "Eastern Time (US & Canada)": "Eastern Standard Time",
    "Haiti": "Haiti Standard Time",
    "Havana": "Cuba Standard Time",
    "Indiana (East)": "US Eastern Standard Time",
    "Turks and Caicos": "Turks And Caicos Standard Time",
    "Asuncion": "Paraguay Standard Time",
    "Atlantic Time (Canada)": "Atlantic Standard Time",
    "Caracas": "Venezuela Standard Time",
    "Caracas, La Paz": "SA Western Standard Time",
    "Cuiaba": "Central Brazilian Standard Time",
    "Georgetown, La Paz, Manaus, San Juan": "SA Western Standard Time",
    "Santiago": "Pacific SA Standard Time",
    "Newfoundland": "Newfoundland Standard Time",
    "Araguaina": "Tocantins Standard Time",
    "Brasilia": "E. South America Standard Time",
    "Cayenne, Fortaleza": "SA Eastern Standard Time",
    "City of Buenos Aires": "Argentina Standard Time",
    "Buenos Aires, Georgetown": "Argentina Standard Time",
    "Greenland": "Greenland Standard Time",
    "Montevideo": "Montevideo Standard Time",
    "Punta Arenas": "Magallanes Standard Time",
    "Saint Pierre and Miquelon": "Saint Pierre Standard Time",
    "Salvador": "Bahia Standard Time",
    "Coordinated Universal Time-02": "UTC-02",
    "Azores": "Azores Standard Time",
    "Cabo Verde Is.": "Cape Verde Standard Time",
    "Cape Verde Is.": "Cape Verde Standard Time",
    "Coordinated Universal Time": "UTC",
    "Dublin, Edinburgh, Lisbon, London": "GMT Standard Time",
    "Greenwich Mean Time : Dublin, Edinburgh, Lisbon, London": "GMT Standard Time",
    "Monrovia, Reykjavik": "Greenwich Standard Time",
    "Casablanca, Monrovia, Reykjavik": "Greenwich Standard Time",
    "Sao Tome": "Sao Tome Standard Time",
    "Casablanca": "Morocco Standard Time",
    "Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna": "W. Europe Standard Time",
    "Belgrade, Bratislava, Budapest, Ljubljana, Prague": "Central Europe Standard Time",
    "Brussels, Copenhagen, Madrid, Paris": "Romance Standard Time",
    "Sarajevo, Skopje, Warsaw, Zagreb": "Central European Standard Time",
    "West Central Africa": "W. Central Africa Standard Time",
    "Amman": "Jordan Standard Time",
    "Athens, Bucharest": "GTB Standard Time",
    "Athens, Bucharest, Istanbul": "GTB Standard Time",
    "Beirut": "Middle East Standard Time",
    "Cairo": "Egypt Standard Time",
    "Chisinau": "E. Europe Standard Time",
    "Damascus": "Syria Standard Time",
    "Gaza, Hebron": "West Bank Standard Time",
    "Harare, Pretoria": "South Africa Standard Time",
    "Helsinki, Kyiv, Riga, Sofia, Tallinn, Vilnius": "FLE Standard Time",
    "Helsinki, Kiev, Riga, Sofia, Tallinn, Vilnius": "FLE Standard Time",
    "Jerusalem": "Israel Standard Time",
    "Juba": "South Sudan Standard Time",
    "Kaliningrad": "Kaliningrad Standard Time",
    "Khartoum": "Sudan Standard Time",
    "Tripoli": "Libya Standard Time",
    "Windhoek": "Namibia Standard Time",
    "Baghdad": "Arabic Standard Time",
    "Istanbul": "Turkey Standard Time",
    "Kuwait, Riyadh": "Arab Standard Time",
    "Minsk": "Belarus Standard Time",
    "Moscow, St. Petersburg": "Russian Standard Time",
    "Moscow, St. Petersburg, Volgograd": "Russian Standard Time",
    "Nairobi": "E. Africa Standard Time",
    "Volgograd": "Volgograd Standard Time",
    "Tehran": "Iran Standard Time",
    "Abu Dhabi, Muscat": "Arabian Standard Time",
    "Astrakhan, Ulyanovsk": "Astrakhan Standard Time",
    "Baku": "Azerbaijan Standard Time",
    "Izhevsk, Samara": "Russia Time Zone 3",
    "Port Louis": "Mauritius Standard Time",
    "Saratov": "Saratov Standard Time",
    "Tbilisi": "Georgian Standard Time",
    "Yerevan": "Caucasus Standard Time",
    "Kabul": "Afghanistan Standard Time",
    "Ashgabat, Tashkent": "West Asia Standard Time",
    "Ekaterinburg": "Ekaterinburg Standard Time",
    "Islamabad, Karachi": "Pakistan Standard Time",
    "Islamabad, Karachi, Tashkent": "Pakistan Standard Time",
    "Qyzylorda": "Qyzylorda Standard Time",
    "Chennai, Kolkata, Mumbai, New Delhi": "India Standard Time",
    "Sri Jayawardenepura": "Sri Lanka Standard Time",
    "Kathmandu": "Nepal Standard Time",
    "Astana": "Central Asia Standard Time",
    "Dhaka": "Bangladesh Standard Time",
    "Omsk": "Omsk Standard Time",
    "Yangon (Rangoon)": "Myanmar Standard Time",
    "Bangkok, Hanoi, Jakarta": "SE Asia Standard Time",
    "Barnaul, Gorno-Altaysk": "Altai Standard Time",
    "Hovd": "W. Mongolia Standard Time",
    "Krasnoyarsk": "North Asia Standard Time",
    "Novosibirsk": "N. Central Asia Standard Time",
    "Tomsk": "Tomsk Standard Time",
    "Beijing, Chongqing, Hong Kong, Urumqi": "China Standard Time",
    "Irkutsk": "North Asia East Standard Time",
    "Kuala Lumpur, Singapore": "Singapore Standard Time",
    "Perth": "W. Australia Standard Time",
    "Taipei": "Taipei Standard Time",
    "Ulaanbaatar": "Ulaanbaatar Standard Time",
    "Eucla": "Aus Central W. Standard Time",
    "Chita": "Transbaikal Standard Time",
    "Osaka, Sapporo, Tokyo": "Tokyo Standard Time",
    "Pyongyang": "North Korea Standard Time",
    "Seoul": "Korea Standard Time",
    "Yakutsk": "Yakutsk Standard Time",
    "Adelaide": "Cen. Australia Standard Time",
    "Darwin": "AUS Central Standard Time",
    "Brisbane": "E. Australia Standard Time",
    "Canberra, Melbourne, Sydney": "AUS Eastern Standard Time",
    "Guam, Port Moresby": "West Pacific Standard Time",
    "Hobart": "Tasmania Standard Time",
    "Vladivostok": "Vladivostok Standard Time",
    "Lord Howe Island": "Lord Howe Standard Time",
    "Bougainville Island": "Bougainville Standard Time",
    "Chokurdakh": "Russia Time Zone 10",
    "Magadan": "Magadan Standard Time",
    "Norfolk Island": "Norfolk Standard Time",
    "Sakhalin": "Sakhalin Standard Time",
    "Solomon Is., New Caledonia": "Central Pacific Standard Time",
    "Magadan, Solomon Is., New Caledonia": "Central Pacific Standard Time",
    "Anadyr, Petropavlovsk-Kamchatsky": "Russia Time Zone 11",
    "Auckland, Wellington": "New Zealand Standard Time",
    "Coordinated Universal Time+12": "UTC+12",
    "Fiji": "Fiji Standard Time",
    "Fiji, Kamchatka, Marshall Is.": "Fiji Standard Time",
    "Chatham Islands": "Chatham Islands Standard Time",
    "Coordinated Universal Time+13": "UTC+13",
    "Nuku'alofa": "Tonga Standard Time",
    "Samoa": "Samoa Standard Time",
    "Kiritimati Island": "Line Islands Standard Time",
}

# "(GMT-05:00) Eastern Time (US & Canada)", "(UTC+05:30) Chennai, …", "(UTC) Coordinated Universal Time"
_DISPLAY_NAME = re.compile(
    r"\(\s*(?:GMT|UTC)\s*(?:([+-])\s*(\d{1,2})(?::?(\d{2}))?)?\s*\)\s*(.*)", re.IGNORECASE | re.DOTALL
)


@dataclass(frozen=True)
class ResolvedTimeZone:
    """An IANA zone for a CXone time zone; ``warning`` says what the task log should hear, if anything.

    ``name`` is an IANA name, except for a display name with an unknown name part and an offset that
    is not whole hours, which gives a fixed offset such as ``"+05:30"`` (:func:`load_time_zone` reads both).
    """

    name: str
    source: Source
    warning: str | None = None


def resolve_time_zone(value: object) -> ResolvedTimeZone:
    """The IANA zone CXone means by ``value`` (an IANA name, a Windows id or a display name); never raises."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ResolvedTimeZone("UTC", "fallback", "no time zone given; using UTC")
    if not isinstance(value, str):
        return _fallback(value, f"is a {type(value).__name__}, not a time zone name")
    text = " ".join(value.split())
    if len(text) > MAX_TIME_ZONE_CHARS:
        return _fallback(text[:40] + "…", f"is {len(text)} characters long (max {MAX_TIME_ZONE_CHARS})")
    iana = _iana_names().get(text.lower())
    if iana is not None:
        return ResolvedTimeZone(iana, "iana")
    windows = _windows_ids().get(text.lower())
    if windows is not None:
        return ResolvedTimeZone(_cldr_table()[windows], "windows")
    match = _DISPLAY_NAME.fullmatch(text)
    if match is None:
        missing = "" if _cldr_table() else f" ({_NO_TABLE})"
        return _fallback(text, f"is neither an IANA name, a Windows time zone id nor a display name{missing}")
    sign, hours, minutes, name = match.groups()
    windows = _windows_for_name_part(name)
    if windows is not None and windows in _cldr_table():
        return ResolvedTimeZone(_cldr_table()[windows], "display-name")
    offset = _offset_minutes(sign, hours, minutes)
    if offset is None:
        return _fallback(text, "has an offset outside -12:00…+14:00")
    zone = _zone_for_offset(offset)
    why = _NO_TABLE if windows is not None else "is not a known Windows display name"
    warning = (
        f"time zone {text!r}: {name.strip() or 'no name'!r} {why}; "
        f"using its offset as {zone}, which has no daylight saving time"
    )
    return ResolvedTimeZone(zone, "offset", warning)


def load_time_zone(name: str) -> dt.tzinfo:
    """The tzinfo of a :attr:`ResolvedTimeZone.name`: an IANA zone, or a fixed offset ``"±hh:mm"``."""
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", name)
    if match is not None:
        sign, hours, minutes = match.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
        return dt.timezone(-delta if sign == "-" else delta)
    return zoneinfo.ZoneInfo(name)


def _fallback(shown: object, reason: str) -> ResolvedTimeZone:
    return ResolvedTimeZone("UTC", "fallback", f"time zone {shown!r} {reason}; using UTC")


def _windows_for_name_part(name: str) -> str | None:
    """The Windows id of a display name's name part; older names join several with ";" (", Tijuana")."""
    table = _display_names()
    candidates = [name, *re.split(r"\s*;\s*", name)]
    for candidate in candidates:
        key = _name_key(candidate)
        if key in table:
            return table[key]
        # A name part that is itself a Windows id: "(UTC-07:00) Mountain Standard Time".
        windows = _windows_ids().get(" ".join(candidate.split()).lower())
        if windows is not None:
            return windows
    return None


def _offset_minutes(sign: str | None, hours: str | None, minutes: str | None) -> int | None:
    if hours is None:
        return 0
    total = int(hours) * 60 + int(minutes or 0)
    total = -total if sign == "-" else total
    return total if -12 * 60 <= total <= 14 * 60 and int(minutes or 0) < 60 else None


def _zone_for_offset(minutes: int) -> str:
    if minutes == 0:
        return "Etc/GMT"
    if minutes % 60 == 0:
        # POSIX's sign: Etc/GMT+5 is five hours *behind* UTC.
        return f"Etc/GMT{-minutes // 60:+d}"
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _name_key(name: str) -> str:
    """Display names differ in spacing and punctuation between Windows versions and tenants."""
    return re.sub(r"[^0-9a-z+-]", "", name.lower().replace("&", "and"))


@functools.cache
def _display_names() -> dict[str, str]:
    return {_name_key(name): windows for name, windows in DISPLAY_NAMES.items()}


#: Why a Windows id cannot be mapped where ``tzlocal`` is missing (a copy dropped into a plugins folder
#: of an Airflow that lacks it: pip installs it with the provider).
_NO_TABLE = "cannot be mapped: CLDR's Windows table comes with tzlocal, which is not installed (pip install tzlocal)"


@functools.cache
def _cldr_table() -> dict[str, str]:
    """CLDR's Windows id → IANA table, as ``tzlocal`` ships it; empty where ``tzlocal`` is missing.

    Imported lazily: the provider dropped into an Airflow ``plugins/`` folder must import without it
    (display names then map by their offset, with a warning).
    """
    try:
        from tzlocal.windows_tz import win_tz
    except ImportError:
        return {}
    return dict(win_tz)


@functools.cache
def _windows_ids() -> dict[str, str]:
    return {windows.lower(): windows for windows in _cldr_table()}


@functools.cache
def _iana_names() -> dict[str, str]:
    names = zoneinfo.available_timezones()
    return {name.lower(): name for name in names}
