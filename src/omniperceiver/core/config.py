"""Frozen, validated configuration dataclasses that round-trip through JSON.

Every config serializes to a dict holding its fields plus ``"type"``, the importable name of its class, so
a nested config (a position encoding inside an input adapter, say) rebuilds as the right class without any
registry. Lists read back from JSON become tuples.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
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


def require_optional_positive(**fields: Any) -> None:
    """Raise ValueError unless every given field is None or an int > 0."""
    require_positive(**{field: value for field, value in fields.items() if value is not None})


def check_heads(heads_field: str, num_heads: int, **channels: int) -> None:
    """Raise ValueError unless ``num_heads`` divides every given channel width (named by its field)."""
    for field, width in channels.items():
        require(width % num_heads == 0, heads_field, num_heads, f"a divisor of {field} ({width})")


def _type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_type(name: str) -> type:
    module, _, qualname = name.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"config type {name!r} cannot be imported: {error}") from error
    return obj


def _encode(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "type" in value:
        return Config.from_dict(value)
    if isinstance(value, list):
        return tuple(_decode(item) for item in value)
    return value


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
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Rebuild a config written by :meth:`to_dict`; ``cls`` may be a base class of the stored type."""
        data = dict(data)
        if "type" not in data:
            raise ValueError(f"a config dict needs a 'type' entry naming its class, got keys {sorted(data)}")
        config_type = _import_type(data.pop("type"))
        if not (isinstance(config_type, type) and issubclass(config_type, cls)):
            raise ValueError(f"config type {_type_name(config_type)} is not a {cls.__name__}")
        known = {f.name for f in dataclasses.fields(config_type)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {config_type.__name__} fields {unknown}; valid fields: {sorted(known)}")
        return config_type(**{key: _decode(value) for key, value in data.items()})

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
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))
