"""The ``cxone`` connection form, the settings and the docs come from one declaration of the fields.

Each test is a drift that used to happen: a field the settings read that the form lacked
(``allowed_api_domains``), a form widget that could not hold what the settings accept (``verify_ssl`` as
a boolean, though a CA bundle path is accepted), a default copied by hand.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import Connection

from cxone_provider.client.fields import CONNECTION_FIELDS, FIELDS, connection_type_info, docs_rows, docs_table
from cxone_provider.client.settings import CxoneSettings
from cxone_provider.get_provider_info import get_provider_info
from cxone_provider.hooks.cxone import CxoneHook

REQUIRED = {
    "login": "KEY-ID",
    "password": "key-secret",
    "extra": {"client_id": "app", "client_secret": "app-secret"},
}


class ReadRecorder(dict[str, Any]):
    """An ``extra_dejson`` that remembers every key read from it."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


class RecordingConnection:
    """An Airflow connection (the attributes ``from_connection`` may read) that remembers which are read."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.read: set[str] = set()
        self.extra_dejson = ReadRecorder(conn.extra_dejson)

    def __getattr__(self, name: str) -> Any:
        self.read.add(name)
        return getattr(self._conn, name)


def _connection(extra: dict[str, Any] | None = None, **fields: Any) -> Connection:
    values = {k: v for k, v in REQUIRED.items() if k != "extra"} | fields
    return Connection(
        conn_id="cxone_form",
        conn_type="cxone",
        extra=json.dumps({**REQUIRED["extra"], **(extra or {})}),
        **values,
    )


def _form() -> dict[str, Any]:
    (entry,) = get_provider_info()["connection-types"]
    return entry


def test_the_provider_info_form_is_the_declaration():
    form = _form()
    assert form == connection_type_info(CxoneHook.__module__ + ".CxoneHook", CxoneHook.hook_name, CxoneHook.conn_type)
    extras = [f for f in CONNECTION_FIELDS if f.extra]
    assert list(form["conn-fields"]) == [f.name for f in extras]
    for declared in extras:
        shown = form["conn-fields"][declared.name]
        assert (shown["label"], shown["description"]) == (declared.label, declared.help)
        assert shown["schema"].get("default") == declared.default
    behaviour = form["ui-field-behaviour"]
    assert behaviour["relabeling"] == {"host": "Auth host", "login": "Access key ID", "password": "Access key secret"}
    assert behaviour["placeholders"]["host"] == FIELDS["host"].default


def test_every_field_the_settings_read_is_in_the_form():
    conn = RecordingConnection(_connection(host="cxone.example.com"))
    CxoneSettings.from_connection(conn)  # type: ignore[arg-type]
    form = _form()
    in_form = set(form["conn-fields"]) | set(form["ui-field-behaviour"]["relabeling"])
    assert conn.extra_dejson.read, "the settings read no extra at all"
    assert conn.extra_dejson.read <= in_form
    assert conn.read - {"conn_id"} <= in_form  # host, login, password: Airflow's own fields, relabelled
    assert "allowed_api_domains" in in_form


def test_a_connection_saved_with_the_forms_defaults_reads_as_one_without_them():
    """Each default the form fills in is the one the code uses when the field is left out."""
    form_defaults = {
        name: spec["schema"]["default"] for name, spec in _form()["conn-fields"].items() if "default" in spec["schema"]
    }
    assert set(form_defaults) >= {"api_version", "connect_timeout", "read_timeout", "verify_ssl"}
    host = _form()["ui-field-behaviour"]["placeholders"]["host"]
    left_out = CxoneSettings.from_connection(_connection())
    filled_in = CxoneSettings.from_connection(_connection(form_defaults, host=host))
    assert filled_in == left_out
    assert (left_out.auth_host, left_out.api_version, left_out.verify_ssl) == (host, "v33.0", True)
    assert (left_out.connect_timeout, left_out.read_timeout) == (10.0, 30.0)


@pytest.mark.parametrize(
    ("typed", "read_as"),
    [
        pytest.param("true", True, id="on"),
        pytest.param("false", False, id="off"),
        pytest.param(__file__, __file__, id="ca-bundle-path"),
    ],
)
def test_verify_ssl_is_a_text_field_that_holds_every_value_the_settings_accept(typed, read_as):
    assert _form()["conn-fields"]["verify_ssl"]["schema"]["type"] == ["string", "null"]
    assert CxoneSettings.from_connection(_connection({"verify_ssl": typed})).verify_ssl == read_as


def test_allowed_api_domains_typed_in_the_form_reach_the_settings():
    settings = CxoneSettings.from_connection(_connection({"allowed_api_domains": "cxone.example.com, .lab.example"}))
    assert settings.allowed_api_domains == ("cxone.example.com", "lab.example")


def test_secret_fields_are_masked_and_others_are_not():
    fields = _form()["conn-fields"]
    masked = {name for name, spec in fields.items() if spec["schema"].get("format") == "password"}
    assert masked == {"client_secret"}


def test_the_docs_table_has_a_row_per_field():
    rows = docs_rows()
    assert len(rows) == len(CONNECTION_FIELDS)
    assert ("extra `connect_timeout`", "number", "`10.0`", FIELDS["connect_timeout"].help) in rows
    assert ("Access key ID (`login`)", "text", "required", FIELDS["login"].help) in rows
    assert docs_table().count("\n") == len(rows) + 2
