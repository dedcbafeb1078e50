"""The ``cxone`` connection's fields, declared once: what the settings read, the form shows and the docs list.

:class:`~cxone_provider.client.settings.CxoneSettings` reads each field by its declared name and
default; :func:`connection_type_info` builds the ``connection-types`` entry Airflow draws the form from
(``conn-fields`` and ``ui-field-behaviour`` in ``get_provider_info``); :func:`docs_rows` gives the rows
of the docs' connection table. A field added here shows up in all three; one the settings read but the
form lacks cannot happen (``tests/client/test_connection_fields.py`` checks it).

Pure data and the standard library only: ``get_provider_info`` imports this while Airflow lists its
providers, before any hook is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

#: ``text`` and ``secret`` hold a string (``secret`` is masked in the form), ``number`` a number of
#: seconds, ``json`` JSON text (the settings also take the list itself, from an env var or the API).
FieldKind = Literal["text", "secret", "number", "json"]

_JSON_TYPES: Final[dict[str, str]] = {"text": "string", "secret": "string", "number": "number", "json": "string"}


@dataclass(frozen=True)
class ConnectionField:
    """One field of the ``cxone`` connection.

    :param name: the ``extra`` key, or Airflow's own field (``host``, ``login``, ``password``) when
        ``extra`` is false.
    :param label: the form's label.
    :param kind: the value's type, which is also the form's widget (see :data:`FieldKind`).
    :param help: one line for the form and the docs.
    :param default: what the settings use when the field is not set (``None``: nothing).
    :param required: a token cannot be requested without it.
    :param extra: an ``extra`` key (the form's own fields are Airflow's, relabelled).
    :param placeholder: a hint shown in an empty field of Airflow's own (host, login, password).
    """

    name: str
    label: str
    kind: FieldKind
    help: str
    default: str | float | None = None
    required: bool = False
    extra: bool = True
    placeholder: str | None = None

    def schema(self) -> dict[str, Any]:
        """The JSON schema Airflow's connection form draws this extra field from."""
        schema: dict[str, Any] = {"type": [_JSON_TYPES[self.kind], "null"]}
        if self.default is not None:
            schema["default"] = self.default
        if self.kind == "secret":
            schema["format"] = "password"
        return schema


DEFAULT_AUTH_HOST: Final = "https://cxone.niceincontact.com"
DEFAULT_API_VERSION: Final = "v33.0"

CONNECTION_FIELDS: Final[tuple[ConnectionField, ...]] = (
    ConnectionField(
        "host",
        "Auth host",
        "text",
        "CXone's auth host; a bare host name means https://.",
        default=DEFAULT_AUTH_HOST,
        extra=False,
        placeholder=DEFAULT_AUTH_HOST,
    ),
    ConnectionField(
        "login",
        "Access key ID",
        "text",
        "The access key id of the API user the provider acts as.",
        required=True,
        extra=False,
        placeholder="access key id of the API user",
    ),
    ConnectionField(
        "password",
        "Access key secret",
        "secret",
        "The access key secret.",
        required=True,
        extra=False,
        placeholder="access key secret",
    ),
    ConnectionField(
        "client_id",
        "Client ID",
        "text",
        "Application registration (client) id, sent with HTTP Basic.",
        required=True,
    ),
    ConnectionField("client_secret", "Client secret", "secret", "Application registration secret.", required=True),
    ConnectionField(
        "tenant_id", "Tenant ID", "text", "Finds the API host by discovery; read from the token when empty."
    ),
    ConnectionField(
        "api_version", "API version", "text", "Agent API version, e.g. v33.0.", default=DEFAULT_API_VERSION
    ),
    ConnectionField(
        "api_base_url",
        "API base URL override",
        "text",
        "Skips discovery, e.g. https://api-na1.niceincontact.com/inContactAPI/services/v33.0/",
    ),
    ConnectionField("connect_timeout", "Connect timeout (s)", "number", "Seconds to open a connection.", default=10.0),
    ConnectionField("read_timeout", "Read timeout (s)", "number", "Seconds to wait for an answer.", default=30.0),
    ConnectionField(
        "verify_ssl",
        "Verify TLS certificates",
        "text",
        "true (leave it), false (only for a test proxy you control: logs a warning), or the path of a "
        "CA bundle file (a corporate CA, the sandbox's --tls CA).",
        default="true",
    ),
    ConnectionField(
        "allowed_api_domains",
        "Allowed API domains",
        "text",
        "More domains a discovered API endpoint may be on besides NICE's, comma-separated "
        "(the bearer token goes there).",
    ),
    ConnectionField(
        "rate_budget",
        "Rate budget",
        "text",
        "Where the tenant's rate budget is shared: process (every sweep and join on this connection in one "
        "process), celery-broker (every process, on the Celery broker's Redis), or a redis:// URL "
        "(docs/pacing.md).",
        default="process",
    ),
    ConnectionField(
        "condition_rules",
        "Condition rules (JSON)",
        "json",
        'The tenant\'s own readings of error answers, tried before the published table: e.g. [{"status": '
        '404, "pattern": "expired", "condition": "InvalidAgentSession"}] (docs/conditions.md).',
    ),
)

#: Each field by name.
FIELDS: Final[dict[str, ConnectionField]] = {f.name: f for f in CONNECTION_FIELDS}
#: Airflow's own connection fields the ``cxone`` form does not use.
HIDDEN_FIELDS: Final = ("schema", "port")


def connection_type_info(hook_class_name: str, hook_name: str, conn_type: str) -> dict[str, Any]:
    """The ``connection-types`` entry of ``get_provider_info``: Airflow's form for the connection."""
    own = [f for f in CONNECTION_FIELDS if not f.extra]
    return {
        "hook-class-name": hook_class_name,
        "hook-name": hook_name,
        "connection-type": conn_type,
        "ui-field-behaviour": {
            "hidden-fields": list(HIDDEN_FIELDS),
            "relabeling": {f.name: f.label for f in own},
            "placeholders": {f.name: f.placeholder for f in own if f.placeholder},
        },
        "conn-fields": {
            f.name: {"label": f.label, "description": f.help, "schema": f.schema()}
            for f in CONNECTION_FIELDS
            if f.extra
        },
    }


def docs_rows() -> list[tuple[str, str, str, str]]:
    """The docs' connection table, one row per field: (field, type, default, meaning)."""
    rows: list[tuple[str, str, str, str]] = []
    for f in CONNECTION_FIELDS:
        where = f"extra `{f.name}`" if f.extra else f"{f.label} (`{f.name}`)"
        default = "required" if f.required else ("—" if f.default is None else f"`{f.default}`")
        rows.append((where, f.kind, default, f.help))
    return rows


def docs_table() -> str:
    """:func:`docs_rows` as a Markdown table."""
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in docs_rows()]
    return "\n".join(lines) + "\n"
