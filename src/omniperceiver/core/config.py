"""Frozen, validated configuration dataclasses that round-trip through JSON.

Every config serializes to a dict holding its fields plus ``"type"``, the short name of its class in the
table of known config types (:data:`omniperceiver.config_types.CONFIG_TYPES`), so a nested config (a position
encoding inside an input adapter, say) rebuilds as the right class. A name is only ever looked up in that
table, never imported. Every value read back is checked against its field's type hint (a bool is not an int,
a JSON list becomes a tuple), so a config file that names code or holds a wrong value gets one ValueError
that names the key, what was expected and what arrived.
"""

from __future__ import annotations

import dataclasses
import json
import math
import reprlib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

C = TypeVar("C", bound="Config")


def require(condition: bool, field: str, value: Any, expected: str) -> None:
    """Raise ValueError naming the field, the value it got, and what would be valid."""
    if not condition:
        raise ValueError(f"{field}={value!r} is invalid: expected {expected}")


def require_positive(**fields: Any) -> None:
    """Raise ValueError unless every given field is an int > 0."""
    for field, value in fields.items():
        require(isinstance(value, int) and value > 0, field, value, "a positive integer")


def require_positive_finite(**fields: Any) -> None:
    """Raise ValueError unless every given field is a number in (0, inf)."""
    for field, value in fields.items():
        require(0 < value < math.inf, field, value, "a positive finite number")


def require_optional_positive(**fields: Any) -> None:
    """Raise ValueError unless every given field is None or an int > 0."""
    require_positive(**{field: value for field, value in fields.items() if value is not None})


def check_heads(heads_field: str, num_heads: int, **channels: int) -> None:
    """Raise ValueError unless ``num_heads`` divides every given channel width (named by its field)."""
    for field, width in channels.items():
        require(width % num_heads == 0, heads_field, num_heads, f"a divisor of {field} ({width})")


def _config_types() -> tuple[Mapping[str, type[Config]], Mapping[str, str]]:
    from omniperceiver.config_types import CONFIG_ALIASES, CONFIG_TYPES  # the one table, above the core

    return CONFIG_TYPES, CONFIG_ALIASES


def _type_name(cls: type[Config]) -> str:
    known, _ = _config_types()
    if known.get(cls.__name__) is not cls:
        raise ValueError(f"{cls.__qualname__} is not a known config type, so it could not be loaded back")
    return cls.__name__


def _lookup_type(name: Any, allowed: tuple[type[Config], ...], where: str) -> type[Config]:
    """The known config type named ``name`` (a short name or an alias), which must be one of ``allowed``."""
    known, aliases = _config_types()
    fitting = sorted(key for key, cls in known.items() if issubclass(cls, allowed))
    expected = f"one of {fitting}" if len(fitting) <= 8 else "a name in omniperceiver.config_types.CONFIG_TYPES"
    config_type = known.get(aliases.get(name, name)) if isinstance(name, str) else None
    if config_type is None:
        raise ValueError(f"{where}.type: unknown config type {name!r}; expected {expected}")
    if not issubclass(config_type, allowed):
        raise ValueError(f"{where}.type: expected {expected}, got {config_type.__name__}")
    return config_type


def _encode(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_encode(item) for item in value]
    return value


def _hint_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_hint_name(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is None and isinstance(hint, type):
        return "None" if hint is type(None) else hint.__name__
    return str(hint).replace("typing.", "")


def typed_value(hint: Any, value: Any, where: str, *, named: bool) -> Any:
    """``value`` (read from JSON or YAML) checked against the type hint ``hint`` of the field at ``where``: a
    bool is not an int, an int is a float, a list is a tuple of the hinted items, a mapping a dict of them;
    nested configs are built by :func:`build_config` (``named`` as there). ValueError naming ``where``, what
    was expected and what arrived."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is None and isinstance(hint, type) and issubclass(hint, Config):
        return build_config((hint,), value, where, named=named)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        configs = tuple(arg for arg in args if typing.get_origin(arg) is None and issubclass(arg, Config))
        if configs and isinstance(value, dict):
            return build_config(configs, value, where, named=named)
        for arg in args:
            try:
                return typed_value(arg, value, where, named=named)
            except ValueError:
                continue
    elif origin is tuple:
        items = args[:1] * len(value) if isinstance(value, list | tuple) and args[1:] == (...,) else args
        if isinstance(value, list | tuple) and len(items) == len(value):
            pairs = enumerate(zip(items, value, strict=True))
            return tuple(typed_value(item, x, f"{where}[{i}]", named=named) for i, (item, x) in pairs)
    elif origin is dict:
        if isinstance(value, dict):
            key_hint, value_hint = args
            return {
                typed_value(key_hint, k, f"{where} key {k!r}", named=named): typed_value(
                    value_hint, v, f"{where}.{k}", named=named
                )
                for k, v in value.items()
            }
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint in (int, str, bool, type(None)):
        if type(value) is hint:
            return value
    else:
        raise TypeError(f"{where}: typed_value does not know the type hint {hint!r}")
    raise ValueError(f"{where}: expected {_hint_name(hint)}, got {reprlib.repr(value)}")


def build_config(allowed: tuple[type[C], ...], data: Any, where: str, *, named: bool) -> C:
    """A config of one of the ``allowed`` classes built from the mapping ``data`` read at ``where``: with
    ``named``, ``data["type"]`` names the class in the table of known types; otherwise it is ``allowed``'s
    only class. Every key must be a field, every field without a default present, every value of its hinted
    type (:func:`typed_value`); nested configs are built the same way."""
    expected = " or ".join(cls.__name__ for cls in allowed)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of {expected} fields, got {type(data).__name__}")
    data = dict(data)
    if named:
        if "type" not in data:
            raise ValueError(f"{where}: expected a 'type' entry naming a {expected}, got keys {sorted(data)}")
        config_type = _lookup_type(data.pop("type"), allowed, where)
    elif len(allowed) == 1:
        (config_type,) = allowed
    else:
        raise TypeError(f"{where}: a mapping without a 'type' entry cannot choose between {expected}")
    hints = typing.get_type_hints(config_type)
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    for key in data:
        if key not in fields:
            raise ValueError(f"{where}.{key}: unknown key; valid keys: {sorted(fields)}")
    for name, field in fields.items():
        if name not in data and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}.{name}: missing; expected {_hint_name(hints[name])}")
    values = {key: typed_value(hints[key], value, f"{where}.{key}", named=named) for key, value in data.items()}
    try:
        return config_type(**values)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _describe(value: Any) -> str:
    if isinstance(value, Config):
        return value.describe()
    if isinstance(value, tuple) and len(value) > 6:
        return f"({_describe(value[0])}, {_describe(value[1])}, ..., {_describe(value[-1])}: {len(value)} items)"
    if isinstance(value, tuple):
        return f"({', '.join(_describe(item) for item in value)}{',' if len(value) == 1 else ''})"
    return repr(value)


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every configuration: subclasses are frozen dataclasses that validate in ``__post_init__``."""

    def to_dict(self) -> dict[str, Any]:
        fields = {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {"type": _type_name(type(self)), **fields}

    @classmethod
    def from_dict(cls: type[C], data: Any, *, where: str = "config") -> C:
        """Rebuild a config written by :meth:`to_dict`; ``cls`` may be a base class of the stored type. Errors
        name the key by its path from ``where`` (the file it came from, say)."""
        return build_config((cls,), data, where, named=True)

    def describe(self) -> str:
        """A compact one-line form that shows only the fields that differ from their defaults (long tuples,
        such as class names, abbreviated)."""
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
                shown.append(f"{f.name}={_describe(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls: type[C], text: str, *, where: str = "config") -> C:
        """Rebuild a config from the JSON ``text`` of :meth:`to_json` (see :meth:`from_dict`)."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:  # RecursionError: nested beyond Python's limit
            raise ValueError(f"{where}: not valid JSON: {error}") from None
        return cls.from_dict(data, where=where)
