"""Per-device settings by IEEE address, with the look-ups every command and frame makes kept O(1).

A command names its device by friendly name and every frame needs the device's settings: with a
couple of hundred devices, walking them all (and building default settings for each unnamed one)
on every look-up is what made the bridge slow. This mapping keeps a friendly name -> IEEE index
right on every write (rename, options, removal, a test setting an entry), and one default
`DeviceConfig` per unnamed device (settings are frozen, so sharing one is safe).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping

from z2m_qbkg40lm.config import DeviceConfig


class DeviceSettings(MutableMapping[str, DeviceConfig]):
    """IEEE ("0x…", lower case) -> the device's settings; every write keeps the name index right."""

    def __init__(self, initial: Mapping[str, DeviceConfig] | None = None) -> None:
        self._by_ieee: dict[str, DeviceConfig] = {}
        self._by_name: dict[str, str] = {}
        self._defaults: dict[str, DeviceConfig] = {}
        if initial is not None:
            self.update(initial)

    def __getitem__(self, ieee: str) -> DeviceConfig:
        return self._by_ieee[ieee]

    def __setitem__(self, ieee: str, settings: DeviceConfig) -> None:
        old = self._by_ieee.get(ieee)
        self._by_ieee[ieee] = settings
        if old is not None and old.friendly_name != settings.friendly_name:
            self._unindex(old.friendly_name, ieee)
        # The configuration and the rename request refuse a name in use; should two entries share
        # one anyway, the newest holds it (and the other gets it back when this one lets go).
        self._by_name[settings.friendly_name] = ieee

    def __delitem__(self, ieee: str) -> None:
        old = self._by_ieee.pop(ieee)
        self._unindex(old.friendly_name, ieee)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_ieee)

    def __len__(self) -> int:
        return len(self._by_ieee)

    def __repr__(self) -> str:
        return f"DeviceSettings({self._by_ieee!r})"

    def _unindex(self, name: str, ieee: str) -> None:
        if self._by_name.get(name) != ieee:
            return
        del self._by_name[name]
        # Rare (a duplicate name): hand the name to another entry that still has it.
        for other, settings in self._by_ieee.items():
            if settings.friendly_name == name:
                self._by_name[name] = other
                break

    def named(self, name: str) -> str | None:
        """The IEEE address of the entry with this friendly name (exact case), or None."""
        return self._by_name.get(name)

    def config(self, ieee: str) -> DeviceConfig:
        """The device's settings, or the defaults with its IEEE address as name (built once)."""
        settings = self._by_ieee.get(ieee)
        if settings is not None:
            return settings
        default = self._defaults.get(ieee)
        if default is None:
            default = self._defaults[ieee] = DeviceConfig(friendly_name=ieee)
        return default

    def forget_default(self, ieee: str) -> None:
        """Drop the cached defaults of a device that left the network."""
        self._defaults.pop(ieee, None)
