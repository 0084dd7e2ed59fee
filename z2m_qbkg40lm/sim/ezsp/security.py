"""The EmberZNet NCP's keys and security state, as bellows sets and reads them.

Facts from Silicon Labs' UG100 and the EmberZNet security manager API (7.4 and later):
`setInitialSecurityState` gives the keys and the bitmask before `formNetwork`; the network key,
its sequence number and the outgoing frame counter are read with `exportKey` and
`getNetworkKeyInfo`, the trust centre's (possibly hashed) link key with `exportKey`, and the link
key table entry by entry (`exportLinkKeyByIndex`, `importLinkKey`). A node on no network has no
current security state.
"""

# bellows's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from typing import Any, Final, Protocol

import bellows.types as bt
import zigpy.types as zt

from z2m_qbkg40lm.sim.ezsp.ncp import Handler
from z2m_qbkg40lm.sim.ezsp.network import LinkKey, NetworkTokens, SecuritySettings
from z2m_qbkg40lm.sim.ezsp.stack_config import StackConfig

KEY_TABLE_SIZE: Final = 12
NO_INDEX: Final = 0xFF
ZERO_EUI64: Final = "00:00:00:00:00:00:00:00"


class SecuredChip(Protocol):
    """What the keys need to know of the chip."""

    tokens: NetworkTokens
    stack: StackConfig

    @property
    def network_up(self) -> bool:
        """True while the coordinator runs its network."""

    @property
    def ieee(self) -> zt.EUI64:
        """The coordinator's EUI64 (the trust centre's)."""

    def state_changed(self, *, membership: bool = False) -> None:
        """Save soon."""


class Security:
    """The security commands; `pending` is what `setInitialSecurityState` gave for the next form."""

    def __init__(self, chip: SecuredChip) -> None:
        self._chip = chip
        self.pending: SecuritySettings | None = None

    def handlers(self) -> dict[str, Handler]:
        """The commands, by bellows's names."""
        return {
            "setInitialSecurityState": self.set_initial_security,
            "getCurrentSecurityState": self.current_security,
            "exportKey": self.export_key,
            "getNetworkKeyInfo": self.network_key_info,
            "exportLinkKeyByIndex": self.export_link_key,
            "importLinkKey": self.import_link_key,
            "clearKeyTable": self.clear_key_table,
            "findKeyTableEntry": self.find_key_table_entry,
            "eraseKeyTableEntry": lambda _p: (bt.sl_Status.OK,),
            "importTransientKey": lambda _p: (bt.sl_Status.OK,),
        }

    def set_initial_security(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if self._chip.network_up:
            return (bt.sl_Status.INVALID_STATE,)
        self.pending = SecuritySettings.from_state(params["state"])
        return (bt.sl_Status.OK,)

    def current_security(self, _params: dict[str, Any]) -> tuple[Any, ...]:
        security = self._chip.tokens.security
        if not self._chip.network_up or security is None:
            return (
                bt.sl_Status.NOT_JOINED,
                bt.EmberCurrentSecurityState(bitmask=0, trustCenterLongAddress=ZERO_EUI64),
            )
        bitmask = (
            bt.EmberCurrentSecurityBitmask.STANDARD_SECURITY_MODE
            | bt.EmberCurrentSecurityBitmask.GLOBAL_LINK_KEY
            | bt.EmberCurrentSecurityBitmask.HAVE_TRUST_CENTER_LINK_KEY
        )
        if security.hashed_link_key:
            bitmask = (bitmask & ~bt.EmberCurrentSecurityBitmask.GLOBAL_LINK_KEY) | (
                bt.EmberCurrentSecurityBitmask.TRUST_CENTER_USES_HASHED_LINK_KEY
            )
        state = bt.EmberCurrentSecurityState(bitmask=bitmask, trustCenterLongAddress=self._chip.ieee)
        return (bt.sl_Status.OK, state)

    def export_key(self, params: dict[str, Any]) -> dict[str, Any]:
        context = params["context"]
        security = self._chip.tokens.security
        key = bytes(16)
        status = bt.sl_Status.NOT_FOUND
        if security is not None:
            if context.core_key_type == bt.SecurityManagerKeyType.NETWORK:
                key, status = security.network_key, bt.sl_Status.OK
            elif context.core_key_type == bt.SecurityManagerKeyType.TC_LINK:
                key, status = security.preconfigured_key, bt.sl_Status.OK
        return {"status": status, "key": bt.KeyData(key), "context": context}

    def network_key_info(self, _params: dict[str, Any]) -> tuple[Any, ...]:
        security = self._chip.tokens.security
        info = bt.SecurityManagerNetworkKeyInfo(
            network_key_set=security is not None,
            alternate_network_key_set=False,
            network_key_sequence_number=security.network_key_sequence if security is not None else 0,
            alt_network_key_sequence_number=0,
            network_key_frame_counter=self._chip.stack.nwk_frame_counter,
        )
        return (bt.sl_Status.OK, info)

    def export_link_key(self, params: dict[str, Any]) -> dict[str, Any]:
        index = int(params["index"])
        keys = self._chip.tokens.link_keys
        found = keys[index] if index < len(keys) else None
        eui64 = zt.EUI64.convert(found.partner if found is not None else ZERO_EUI64)
        metadata = bt.SecurityManagerAPSKeyMetadata(
            bitmask=0,
            outgoing_frame_counter=found.outgoing_frame_counter if found is not None else 0,
            incoming_frame_counter=found.incoming_frame_counter if found is not None else 0,
            ttl_in_seconds=0,
        )
        context = bt.SecurityManagerContextV13(
            core_key_type=bt.SecurityManagerKeyType.APP_LINK,
            key_index=index,
            derived_type=bt.SecurityManagerDerivedKeyTypeV13.NONE,
            eui64=eui64,
            multi_network_index=0,
            flags=bt.SecurityManagerContextFlags.NONE,
            psa_key_alg_permission=0,
        )
        return {
            "eui64": eui64,
            "context": context,
            "plaintext_key": bt.KeyData(found.key if found is not None else bytes(16)),
            "key_data": metadata,
            "status": bt.sl_Status.OK if found is not None else bt.sl_Status.NOT_FOUND,
        }

    def import_link_key(self, params: dict[str, Any]) -> tuple[Any, ...]:
        index = int(params["index"])
        if index >= KEY_TABLE_SIZE:
            return (bt.sl_Status.INVALID_INDEX,)
        keys = self._chip.tokens.link_keys
        entry = LinkKey(str(params["address"]), bytes(params["key"]))
        if index < len(keys):
            keys[index] = entry
        else:
            keys.append(entry)
        self._chip.state_changed()
        return (bt.sl_Status.OK,)

    def clear_key_table(self, _params: dict[str, Any]) -> tuple[Any, ...]:
        self._chip.tokens.link_keys.clear()
        self._chip.state_changed()
        return (bt.sl_Status.OK,)

    def find_key_table_entry(self, params: dict[str, Any]) -> tuple[Any, ...]:
        wanted = str(params["address"])
        for index, key in enumerate(self._chip.tokens.link_keys):
            if key.partner == wanted:
                return (index,)
        return (NO_INDEX,)
