"""What an EmberZNet coordinator keeps of its network over a power cycle (its NV3 tokens).

Facts from Silicon Labs' UG100 and the EmberZNet API: `setInitialSecurityState` gives the
network key, the trust centre's preconfigured (or hashed) link key and the security bitmask
before `formNetwork`, which takes the PAN ids, channel, TX power and update id; both are kept in
tokens with the key's sequence number (the outgoing frame counters are `stack_config`'s tokens),
so `networkInit` after a reset resumes the network. The link key table (`importLinkKey`) is kept
too.
"""

# bellows's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bellows.types as bt


@dataclass(frozen=True)
class SecuritySettings:
    """What `setInitialSecurityState` gave: keys and the security bitmask."""

    bitmask: int
    preconfigured_key: bytes
    network_key: bytes
    network_key_sequence: int
    trust_center_eui64: str

    @classmethod
    def from_state(cls, state: bt.EmberInitialSecurityState) -> SecuritySettings:
        """From the command's structure."""
        return cls(
            int(state.bitmask),
            bytes(state.preconfiguredKey),
            bytes(state.networkKey),
            int(state.networkKeySequenceNumber),
            str(state.preconfiguredTrustCenterEui64),
        )

    @property
    def hashed_link_key(self) -> bool:
        """True when the trust centre derives every device's link key from its preconfigured key."""
        return bool(self.bitmask & bt.EmberInitialSecurityBitmask.TRUST_CENTER_USES_HASHED_LINK_KEY)


@dataclass(frozen=True)
class NetworkSettings:
    """A formed network: what `formNetwork` took."""

    extended_pan_id: str
    pan_id: int
    channel: int
    tx_power: int
    nwk_manager_id: int
    nwk_update_id: int
    channels: int

    @classmethod
    def from_parameters(cls, parameters: bt.EmberNetworkParameters) -> NetworkSettings:
        """From the command's structure."""
        return cls(
            str(parameters.extendedPanId),
            int(parameters.panId),
            int(parameters.radioChannel),
            int(parameters.radioTxPower),
            int(parameters.nwkManagerId),
            int(parameters.nwkUpdateId),
            int(parameters.channels),
        )

    def parameters(self) -> bt.EmberNetworkParameters:
        """As `getNetworkParameters` answers."""
        return bt.EmberNetworkParameters(
            extendedPanId=bt.ExtendedPanId.convert(self.extended_pan_id),
            panId=bt.EmberPanId(self.pan_id),
            radioTxPower=self.tx_power,
            radioChannel=self.channel,
            joinMethod=bt.EmberJoinMethod.USE_MAC_ASSOCIATION,
            nwkManagerId=bt.EmberNodeId(self.nwk_manager_id),
            nwkUpdateId=self.nwk_update_id,
            channels=bt.Channels(self.channels),
        )


@dataclass
class LinkKey:
    """One entry of the link key table."""

    partner: str
    key: bytes
    outgoing_frame_counter: int = 0
    incoming_frame_counter: int = 0


@dataclass
class NetworkTokens:
    """The coordinator's network, as its tokens hold it; `to_json` for the state file."""

    network: NetworkSettings | None = None
    security: SecuritySettings | None = None
    link_keys: list[LinkKey] = field(default_factory=list)

    @property
    def formed(self) -> bool:
        """True when a network can be resumed."""
        return self.network is not None and self.security is not None

    def leave(self) -> None:
        """`leaveNetwork`: the network is forgotten (the keys and counters stay)."""
        self.network = None

    def factory_reset(self) -> None:
        """`tokenFactoryReset`: the network, its keys and the link key table are erased."""
        self.network = None
        self.security = None
        self.link_keys.clear()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (keys as hex)."""
        return {
            "network": None if self.network is None else self.network.__dict__,
            "security": None
            if self.security is None
            else {
                **self.security.__dict__,
                "preconfigured_key": self.security.preconfigured_key.hex(),
                "network_key": self.security.network_key.hex(),
            },
            "link_keys": [{**key.__dict__, "key": key.key.hex()} for key in self.link_keys],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkTokens:
        """From `to_json`'s form; KeyError, TypeError or ValueError when it is not that."""
        network = data.get("network")
        security = data.get("security")
        return cls(
            network=None if network is None else NetworkSettings(**network),
            security=None
            if security is None
            else SecuritySettings(
                **{
                    **security,
                    "preconfigured_key": bytes.fromhex(security["preconfigured_key"]),
                    "network_key": bytes.fromhex(security["network_key"]),
                }
            ),
            link_keys=[
                LinkKey(**{**key, "key": bytes.fromhex(key["key"])}) for key in data.get("link_keys", [])
            ],
        )
