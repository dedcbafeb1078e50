"""Sandbox settings declared once, as dataclass fields, and everything derived from them.

A setting is a field of :class:`~cxone_sandbox.faults.Faults` or
:class:`~cxone_sandbox.settings.Settings` whose default is :func:`setting`: its type is the
field's annotation, and the call gives its help text, range and, where it differs from the field's
name, its command-line spelling. From that one declaration come:

- the command line of ``cxone-sandbox`` (:func:`add_arguments`, :func:`values_from_args`);
- the checks of a value from JSON (``PUT /_sandbox/faults``) or from Python (:func:`coerce`,
  :func:`check`);
- the arguments :class:`cxone_provider.testing.SandboxServer` starts the server with (:func:`to_args`,
  :func:`to_env`);
- the docs' table of settings (:func:`markdown_table`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

Kind = Literal["float", "int", "bool", "str", "choice"]
Group = Literal["faults", "tenant", "server"]
#: The title of each group, on the command line and in the docs' table.
GROUP_TITLES: dict[str, str] = {
    "faults": "faults (all off by default)",
    "tenant": "tenant settings",
    "server": "server settings",
}
_KINDS: dict[type, Kind] = {float: "float", int: "int", bool: "bool", str: "str"}


def setting(
    default: Any,
    help_text: str,
    *,
    group: Group,
    flag: str | None = None,
    metavar: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    env: str | None = None,
    **extra: Any,
) -> Any:
    """Declare a setting: the default of a dataclass field, with everything else about it.

    :param help_text: one line for ``--help`` and the docs (the default is added to both).
    :param group: ``faults``, ``tenant`` or ``server``.
    :param flag: the command-line flag when it is not ``--`` and the name with ``-`` for ``_``
        (the derived spelling is accepted too); a boolean that defaults to true is ``--no-<name>``.
    :param minimum: the smallest value allowed (inclusive); ``maximum``: the largest.
    :param positive: the value must be above 0.
    :param env: the environment variable it is also read from. Such a setting is a secret: left out
        of ``repr``, it travels to a child process in its environment, never on its command line.
    :param extra: further facts a reader of the metadata needs (``fault`` of a failure rate…).
    """
    meta = {
        "help": help_text,
        "group": group,
        "flag": flag,
        "metavar": metavar,
        "minimum": minimum,
        "maximum": maximum,
        "positive": positive,
        "env": env,
        **extra,
    }
    return field(default=default, repr=env is None, metadata=meta)


@dataclass(frozen=True)
class Spec:
    """One setting as read back from its field: what every derivation needs."""

    name: str
    kind: Kind
    nullable: bool
    default: Any
    help: str
    group: str
    flags: tuple[str, ...]
    metavar: str | None
    minimum: float | None
    maximum: float | None
    positive: bool
    env: str | None
    choices: tuple[str, ...]
    meta: Mapping[str, Any]

    @property
    def flag(self) -> str:
        """The flag shown in ``--help`` and in the docs."""
        return self.flags[0]

    def range_text(self) -> str:
        """The allowed values, in words (``""``: any of its type)."""
        if self.choices:
            return " or ".join(f"`{c}`" for c in self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum:g} to {self.maximum:g}"
        if self.positive:
            return "> 0"
        if self.minimum is not None:
            return f">= {self.minimum:g}"
        return ""


def specs(cls: type) -> tuple[Spec, ...]:
    """The settings a dataclass declares with :func:`setting`, in field order."""
    hints = typing.get_type_hints(cls)
    out: list[Spec] = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        kind, nullable, choices = _kind_of(hints[f.name])
        derived = "--" + f.name.replace("_", "-")
        if kind == "bool" and f.default is True:
            derived = "--no-" + f.name.replace("_", "-")
        flags = tuple(dict.fromkeys(x for x in (meta["flag"], derived) if x))
        out.append(
            Spec(
                name=f.name,
                kind=kind,
                nullable=nullable,
                default=f.default,
                help=meta["help"],
                group=meta["group"],
                flags=flags,
                metavar=meta["metavar"],
                minimum=meta["minimum"],
                maximum=meta["maximum"],
                positive=meta["positive"],
                env=meta["env"],
                choices=choices,
                meta=meta,
            )
        )
    return tuple(out)


def _kind_of(hint: Any) -> tuple[Kind, bool, tuple[str, ...]]:
    """``(kind, nullable, choices)`` of a field's type: float, int, bool, str, a ``Literal`` of
    strings, or one of them ``| None``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        kind, _, choices = _kind_of(inner)
        return kind, True, choices
    if typing.get_origin(hint) is Literal:
        return "choice", False, tuple(str(a) for a in args)
    return _KINDS[hint], False, ()


# --------------------------------------------------------------------------------------- values


def coerce(spec: Spec, raw: Any) -> Any:
    """A value from JSON or the command line as the setting's type.

    :raises ValueError: naming the setting when the value is not of its type.
    """
    name = spec.name
    if raw is None and spec.nullable:
        return None
    if spec.kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"true", "false", "1", "0"}:
            return raw.lower() in {"true", "1"}
        raise ValueError(f"{name} must be a boolean, got {raw!r}")
    if spec.kind == "choice":
        if isinstance(raw, str) and raw in spec.choices:
            return raw
        raise ValueError(f"{name} must be one of {', '.join(spec.choices)}, got {raw!r}")
    if spec.kind == "str":
        if isinstance(raw, str):
            return raw
        raise ValueError(f"{name} must be a string{' or null' if spec.nullable else ''}, got {raw!r}")
    # bool is an int subclass; a boolean rate is certainly a mistake.
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"{name} must be a number, got {raw!r}")
    try:
        if spec.kind == "int":
            number = float(raw)
            if not number.is_integer():
                raise ValueError
            return int(number)
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def check(instance: Any) -> None:
    """Check every setting of a dataclass instance against its type and range (no coercion).

    :raises ValueError: naming the first setting out of bounds.
    """
    for spec in specs(type(instance)):
        value = getattr(instance, spec.name)
        if value is None and spec.nullable:
            continue
        if spec.kind in ("int", "float"):
            numeric = int if spec.kind == "int" else int | float
            if isinstance(value, bool) or not isinstance(value, numeric):
                raise ValueError(
                    f"{spec.name} must be {'an integer' if spec.kind == 'int' else 'a number'}, got {value!r}"
                )
            _check_range(spec, value)
        elif spec.kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"{spec.name} must be a boolean, got {value!r}")
        elif spec.kind == "str" and not isinstance(value, str):
            raise ValueError(f"{spec.name} must be a string, got {value!r}")
        elif spec.kind == "choice" and value not in spec.choices:
            raise ValueError(f"{spec.name} must be one of {', '.join(spec.choices)}, got {value!r}")


def _check_range(spec: Spec, value: float) -> None:
    low, high = spec.minimum, spec.maximum
    if low is not None and high is not None and not low <= value <= high:
        raise ValueError(f"{spec.name} must be between {low:g} and {high:g}, got {value!r}")
    if spec.positive and value <= 0:
        raise ValueError(f"{spec.name} must be positive, got {value!r}")
    if low is not None and value < low:
        shown = "must not be negative" if low == 0 else f"must be at least {low:g}"
        raise ValueError(f"{spec.name} {shown}, got {value!r}")


def from_mapping(cls: type, values: Mapping[str, Any] | None, what: str, *, convert: bool) -> Any:
    """An instance of ``cls`` from a mapping of settings, merged over the defaults.

    :param what: how an error names the settings (``fault knob``…).
    :param convert: coerce each value to its type (:func:`coerce`: JSON and command-line values);
        otherwise the values must be of their type already.
    :raises ValueError: on an unknown name or a value of the wrong type or out of range.
    """
    if not values:
        return cls()
    by_name = {s.name: s for s in specs(cls)}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(unknown)}; known: {', '.join(by_name)}")
    if convert:
        values = {name: coerce(by_name[name], raw) for name, raw in values.items()}
    return cls(**values)


# --------------------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """A flag for each setting of ``cls``, in its group's section of ``--help``; every flag defaults to
    ``None``, "not given" (:func:`values_from_args` then leaves the setting at its default)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in specs(cls):
        if spec.group not in groups:
            groups[spec.group] = parser.add_argument_group(GROUP_TITLES[spec.group])
        help_text = f"{spec.help} (default: {_shown(spec.default)})".replace("%", "%%")
        options: dict[str, Any] = {"dest": spec.name, "default": None, "help": help_text}
        if spec.kind == "bool":
            options["action"] = "store_false" if spec.default is True else "store_true"
            options["default"] = None
        elif spec.kind == "choice":
            options["choices"] = spec.choices
        else:
            options["metavar"] = spec.metavar
            options["type"] = _ARG_TYPES[spec.kind]
        groups[spec.group].add_argument(*spec.flags, **options)
        if spec.kind == "bool":
            # The other spelling too, so that a flag keeps working when its setting's default flips
            # (``--no-states-session-id`` from when the extension was on by default).
            name = spec.name.replace("_", "-")
            opposite = f"--{name}" if spec.default is True else f"--no-{name}"
            action = "store_true" if spec.default is True else "store_false"
            groups[spec.group].add_argument(
                opposite, dest=spec.name, action=action, default=None, help=argparse.SUPPRESS
            )


_ARG_TYPES: dict[str, Callable[[str], Any]] = {"float": float, "int": int, "str": str}


def values_from_args(cls: type, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings of ``cls`` a command line gave; a setting with an environment variable reads it
    when the flag is absent (an empty variable counts as unset)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for spec in specs(cls):
        value = getattr(args, spec.name, None)
        if value is None and spec.env:
            value = env.get(spec.env) or None
        if value is not None:
            values[spec.name] = value
    return values


def to_args(instance: Any) -> list[str]:
    """The flags that start a server with ``instance``'s settings: those that differ from the
    defaults, the secrets aside (:func:`to_env`). Free text is one ``--flag=value`` word, so that a
    value starting with ``-`` is not taken for a flag."""
    args: list[str] = []
    for spec in specs(type(instance)):
        value = getattr(instance, spec.name)
        if spec.env or value == spec.default:
            continue
        if spec.kind == "bool":
            args.append(spec.flag)
        elif spec.kind == "str":
            args.append(f"{spec.flag}={value}")
        else:
            args += [spec.flag, str(value)]
    return args


def to_env(instance: Any) -> dict[str, str]:
    """The environment variables of the secret settings that are set."""
    return {
        spec.env: str(getattr(instance, spec.name))
        for spec in specs(type(instance))
        if spec.env and getattr(instance, spec.name) is not None
    }


# --------------------------------------------------------------------------------------- the docs


def markdown_table(classes: Iterable[type]) -> str:
    """The docs' table of the settings of ``classes``, one row a setting, in declaration order."""
    rows = [
        "| setting | command line | type | default | range | what it does |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for cls in classes:
        for spec in specs(cls):
            line = " / ".join(f"`{f}`" for f in spec.flags)
            if spec.env:
                line += f" or `{spec.env}`"
            kind: str = spec.kind if spec.kind in ("float", "int", "bool") else "text"
            if spec.nullable:
                kind += " or null"
            cells = [f"`{spec.name}`", line, kind, f"`{_shown(spec.default)}`", spec.range_text(), spec.help]
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return str(value)
