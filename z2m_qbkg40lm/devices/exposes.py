"""Zigbee2MQTT's exposes format: typed descriptions of a device's properties.

Generic exposes (binary, numeric, enum) carry one state property each; a specific expose (switch)
only groups generic ones as `features`. `to_json()` gives exactly what Zigbee2MQTT puts in
`definition.exposes` / `definition.options`; the helpers at the bottom answer the bridge's
questions "is this property known / settable / readable".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any, Literal

Category = Literal["config", "diagnostic"]


class Access(IntFlag):
    """The `access` bit mask of a generic expose."""

    STATE = 1  # the property appears in the published state
    SET = 2  # writable through /set
    GET = 4  # readable through /get
    STATE_SET = STATE | SET
    STATE_GET = STATE | GET
    ALL = STATE | SET | GET


@dataclass(frozen=True, kw_only=True)
class Expose:
    """One entry of a definition's exposes or options."""

    type: str
    endpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The expose as Zigbee2MQTT publishes it."""
        out: dict[str, Any] = {"type": self.type}
        if self.endpoint is not None:
            out["endpoint"] = self.endpoint
        return out

    def features(self) -> tuple[PropertyExpose, ...]:
        """The property-carrying exposes inside this one (itself when it is generic)."""
        return ()


@dataclass(frozen=True, kw_only=True)
class PropertyExpose(Expose):
    """A generic expose: one property of the published state."""

    name: str
    property: str
    access: Access
    label: str
    description: str | None = None
    category: Category | None = None

    def to_json(self) -> dict[str, Any]:
        """The expose as Zigbee2MQTT publishes it."""
        out = super().to_json()
        out.update(name=self.name, label=self.label, property=self.property, access=int(self.access))
        if self.description is not None:
            out["description"] = self.description
        if self.category is not None:
            out["category"] = self.category
        return out

    def features(self) -> tuple[PropertyExpose, ...]:
        """The property-carrying exposes inside this one (itself when it is generic)."""
        return (self,)

    # Plain methods, not properties: the `property` field above shadows the builtin in this class.
    def is_state(self) -> bool:
        """True when the property appears in the published state."""
        return Access.STATE in self.access

    def is_settable(self) -> bool:
        """True when the property can be written through /set."""
        return Access.SET in self.access

    def is_readable(self) -> bool:
        """True when the property can be refreshed through /get."""
        return Access.GET in self.access


@dataclass(frozen=True, kw_only=True)
class BinaryExpose(PropertyExpose):
    """A two-valued property (`value_on` / `value_off`, optionally `value_toggle`)."""

    type: str = field(default="binary", init=False)
    value_on: Any
    value_off: Any
    value_toggle: Any = None

    def to_json(self) -> dict[str, Any]:
        """The expose as Zigbee2MQTT publishes it."""
        out = super().to_json()
        out.update(value_on=self.value_on, value_off=self.value_off)
        if self.value_toggle is not None:
            out["value_toggle"] = self.value_toggle
        return out


@dataclass(frozen=True, kw_only=True)
class NumericExpose(PropertyExpose):
    """A number, with optional unit, bounds and step."""

    type: str = field(default="numeric", init=False)
    unit: str | None = None
    value_min: float | None = None
    value_max: float | None = None
    value_step: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The expose as Zigbee2MQTT publishes it."""
        out = super().to_json()
        for key, value in (
            ("unit", self.unit),
            ("value_min", self.value_min),
            ("value_max", self.value_max),
            ("value_step", self.value_step),
        ):
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, kw_only=True)
class EnumExpose(PropertyExpose):
    """One string out of a fixed list."""

    type: str = field(default="enum", init=False)
    values: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The expose as Zigbee2MQTT publishes it."""
        out = super().to_json()
        out["values"] = list(self.values)
        return out


@dataclass(frozen=True, kw_only=True)
class SwitchExpose(Expose):
    """Zigbee2MQTT's specific `switch` type: no name or access of its own, only features."""

    type: str = field(default="switch", init=False)
    feature_list: tuple[PropertyExpose, ...]

    def to_json(self) -> dict[str, Any]:
        """The expose as Zigbee2MQTT publishes it."""
        out = super().to_json()
        out["features"] = [feature.to_json() for feature in self.feature_list]
        return out

    def features(self) -> tuple[PropertyExpose, ...]:
        """The property-carrying exposes inside this one (itself when it is generic)."""
        return tuple(leaf for feature in self.feature_list for leaf in feature.features())


# --- Builders -----------------------------------------------------------------------------------


def label_for(name: str) -> str:
    """Zigbee2MQTT's default label: underscores become spaces, the first letter upper-case."""
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


def binary(
    name: str,
    access: Access,
    value_on: Any,
    value_off: Any,
    *,
    value_toggle: Any = None,
    description: str | None = None,
    category: Category | None = None,
    label: str | None = None,
) -> BinaryExpose:
    """A binary expose whose property is its name."""
    return BinaryExpose(
        name=name,
        property=name,
        access=access,
        label=label if label is not None else label_for(name),
        description=description,
        category=category,
        value_on=value_on,
        value_off=value_off,
        value_toggle=value_toggle,
    )


def numeric(
    name: str,
    access: Access,
    *,
    unit: str | None = None,
    value_min: float | None = None,
    value_max: float | None = None,
    value_step: float | None = None,
    description: str | None = None,
    category: Category | None = None,
    label: str | None = None,
) -> NumericExpose:
    """A numeric expose whose property is its name."""
    return NumericExpose(
        name=name,
        property=name,
        access=access,
        label=label if label is not None else label_for(name),
        description=description,
        category=category,
        unit=unit,
        value_min=value_min,
        value_max=value_max,
        value_step=value_step,
    )


def enum(
    name: str,
    access: Access,
    values: Iterable[str],
    *,
    description: str | None = None,
    category: Category | None = None,
    label: str | None = None,
) -> EnumExpose:
    """An enum expose whose property is its name."""
    return EnumExpose(
        name=name,
        property=name,
        access=access,
        label=label if label is not None else label_for(name),
        description=description,
        category=category,
        values=tuple(values),
    )


def switch(*features: PropertyExpose, endpoint: str | None = None) -> SwitchExpose:
    """A `switch` grouping its features (at least the `state` binary)."""
    return SwitchExpose(feature_list=features, endpoint=endpoint)


def switch_state(description: str = "On/off state of the switch") -> BinaryExpose:
    """The `state` feature of a switch: ON/OFF/TOGGLE, readable and settable."""
    return binary("state", Access.ALL, "ON", "OFF", value_toggle="TOGGLE", description=description)


def linkquality() -> NumericExpose:
    """The `linkquality` expose Zigbee2MQTT appends to every device."""
    return numeric(
        "linkquality",
        Access.STATE,
        unit="lqi",
        value_min=0,
        value_max=255,
        description="Link quality (signal strength)",
        category="diagnostic",
    )


# --- Questions the bridge asks --------------------------------------------------------------------


def iter_features(exposes: Iterable[Expose]) -> Iterator[PropertyExpose]:
    """Every property-carrying expose, switches flattened into their features."""
    for expose in exposes:
        yield from expose.features()


def find_feature(exposes: Iterable[Expose], property_name: str) -> PropertyExpose | None:
    """The expose publishing `property_name`, or None when the property is not exposed."""
    for feature in iter_features(exposes):
        if feature.property == property_name:
            return feature
    return None


def _properties_with(exposes: Iterable[Expose], access: Access) -> tuple[str, ...]:
    # dict keeps the exposes' order and drops duplicates (a property exposed twice counts once)
    found = {f.property: None for f in iter_features(exposes) if access in f.access}
    return tuple(found)


def state_properties(exposes: Iterable[Expose]) -> tuple[str, ...]:
    """Properties that appear in the published state, in expose order."""
    return _properties_with(exposes, Access.STATE)


def settable_properties(exposes: Iterable[Expose]) -> tuple[str, ...]:
    """Properties writable through /set, in expose order."""
    return _properties_with(exposes, Access.SET)


def readable_properties(exposes: Iterable[Expose]) -> tuple[str, ...]:
    """Properties readable through /get, in expose order."""
    return _properties_with(exposes, Access.GET)


def exposes_json(exposes: Iterable[Expose]) -> list[dict[str, Any]]:
    """The JSON list for `definition.exposes` or `definition.options`."""
    return [expose.to_json() for expose in exposes]
