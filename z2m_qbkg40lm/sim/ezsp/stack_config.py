"""The EmberZNet NCP's settings that are not the network: configuration values, policies, values,
manufacturing and NV3 tokens, counters, the NCP's EUI64, endpoints, the multicast table and the
custom-frame probe. The network front-end reads what it needs here (`config_value`, `eui64`,
`endpoints`, `multicast_groups`, the frame counters), counts events with `count`, sets
`network_up` when the stack is up, and may serve its own NV3 tokens (`provide_token`).

Where the facts come from:

- Command layouts, identifiers and status enums: bellows's command tables (`bellows.ezsp.v13` for
  EZSP 13 / EmberZNet 7.4.4.0, `bellows.ezsp.v14` for EZSP 14 / EmberZNet 8.0.2.0) and
  `bellows.types`, which mirror the EmberZNet headers. EZSP 14 answers with `sl_status_t`; the
  EZSP 13 statuses are carried over by bellows's own table (`SL_STATUS_MAP`).
- Behaviour, from Silicon Labs UG100 (EZSP reference): configuration values and endpoints can be
  changed after the NCP reset and until the stack reports NETWORK_UP, then the NCP answers
  EZSP_ERROR_INVALID_CALL; an unknown configuration or value id gets EZSP_ERROR_INVALID_ID, a value
  out of range EZSP_ERROR_INVALID_VALUE. Since EmberZNet 7.3 the packet buffers are sized when the
  firmware is built, and CONFIG_PACKET_BUFFER_COUNT is refused with EZSP_ERROR_INVALID_ID (as
  users of 7.3.1 and later saw it in bellows's log).
- Defaults: the Home Assistant Connect ZBT-1 build (NabuCasa silabs-firmware-builder manifest,
  Gecko SDK 4.4: child table 32, key table 12, source route table 200, broadcast table 64, APS
  unicast messages 32, binding table 32) over the EmberZNet defaults for the rest.
- Manufacturing tokens are fixed-size flash fields, all 0xFF when never written; a written one
  cannot be written again without erasing flash (EMBER_ERR_FLASH_WRITE_INHIBITED). NV3 tokens are
  rewritable; the restored-EUI64 token, when set, becomes the NCP's EUI64 at its next reboot.
- The outgoing NWK and APS frame counters can be set only with no network and below 0xFFFFFFFF
  (EmberZNet API reference of sl_zigbee_set_outgoing_nwk_frame_counter; SL_STATUS_INVALID_STATE
  in EZSP 14). They are NV3 tokens here, as in the stack.
- Stock NCP firmware has no custom-frame (XNCP) handler: `customFrame` answers
  EMBER_INVALID_CALL with an empty reply (Simplicity SDK's xncp-stubs.c: SL_STATUS_INVALID_STATE
  and a zero reply length), so bellows ends with no XNCP features and goes on.
- Counters: uint16 tallies that saturate at 0xFFFF (Ember's counter handler without
  EMBER_COUNTER_WRAP_AROUND), cleared by readAndClearCounters and by a reboot.
- The multicast table lives in RAM, sized by CONFIG_MULTICAST_TABLE_SIZE; after a reboot the host
  subscribes its groups again (bellows does so at every start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import bellows.types as bt
from bellows.ezsp.v13.commands import COMMANDS as COMMANDS_V13
from bellows.ezsp.v14.commands import COMMANDS as COMMANDS_V14

LOGGER = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], tuple[Any, ...]]
_Result = dict[str, Any]

_COMMANDS: Final = {13: COMMANDS_V13, 14: COMMANDS_V14}
_VERSION_INFO: Final = {  # EmberVersion: build (LE), major, minor, patch, special, type (GA)
    13: bytes((0x00, 0x00, 7, 4, 4, 0, 0xAA)),
    14: bytes((0x00, 0x00, 8, 0, 2, 0, 0xAA)),
}
_ERASED: Final = 0xFF
_UNSET_EUI64: Final = bt.EUI64.convert("FF:FF:FF:FF:FF:FF:FF:FF")
_COUNTER_COUNT: Final = len(bt.EmberCounterType)  # EMBER_COUNTER_TYPE_COUNT in 7.4
_FREE_BUFFERS: Final = 0xF7  # a plausible idle figure for a 255-buffer build
MANUFACTURER: Final = "z2m-qbkg40lm"
BOARD_NAME: Final = "ezsp-emulator"

C = bt.EzspConfigId


@dataclass(frozen=True, slots=True)
class _Config:
    """One configuration value: its default and the values the firmware accepts."""

    default: int
    low: int = 0
    high: int = 0xFFFF


# The configuration ids an EmberZNet 7.4 NCP knows; the others (alarm buffers, mobile nodes,
# RF4CE, the poll-timeout shift, the packet buffer count) get EZSP_ERROR_INVALID_ID.
_CONFIGS: Final[Mapping[bt.EzspConfigId, _Config]] = {
    C.CONFIG_NEIGHBOR_TABLE_SIZE: _Config(16, 16, 26),
    C.CONFIG_APS_UNICAST_MESSAGE_COUNT: _Config(32, 1, 255),
    C.CONFIG_BINDING_TABLE_SIZE: _Config(32, 0, 127),
    C.CONFIG_ADDRESS_TABLE_SIZE: _Config(8, 1, 250),
    C.CONFIG_MULTICAST_TABLE_SIZE: _Config(8, 1, 250),
    C.CONFIG_ROUTE_TABLE_SIZE: _Config(16, 0, 255),
    C.CONFIG_DISCOVERY_TABLE_SIZE: _Config(8, 0, 255),
    C.CONFIG_STACK_PROFILE: _Config(2, 0, 2),
    C.CONFIG_SECURITY_LEVEL: _Config(5, 5, 5),  # Zigbee 3.0 has no other level
    C.CONFIG_MAX_HOPS: _Config(30, 0, 30),
    C.CONFIG_MAX_END_DEVICE_CHILDREN: _Config(32, 0, 64),
    C.CONFIG_INDIRECT_TRANSMISSION_TIMEOUT: _Config(7680, 0, 30000),
    C.CONFIG_END_DEVICE_POLL_TIMEOUT: _Config(8, 0, 14),
    C.CONFIG_TX_POWER_MODE: _Config(0, 0, 3),
    C.CONFIG_DISABLE_RELAY: _Config(0, 0, 1),
    C.CONFIG_TRUST_CENTER_ADDRESS_CACHE_SIZE: _Config(2, 0, 255),
    C.CONFIG_SOURCE_ROUTE_TABLE_SIZE: _Config(200, 0, 255),
    C.CONFIG_FRAGMENT_WINDOW_SIZE: _Config(1, 1, 8),
    C.CONFIG_FRAGMENT_DELAY_MS: _Config(0),
    C.CONFIG_KEY_TABLE_SIZE: _Config(12, 0, 127),
    C.CONFIG_APS_ACK_TIMEOUT: _Config(1600),
    C.CONFIG_ACTIVE_SCAN_DURATION: _Config(3, 0, 14),
    C.CONFIG_END_DEVICE_BIND_TIMEOUT: _Config(60),
    C.CONFIG_PAN_ID_CONFLICT_REPORT_THRESHOLD: _Config(1, 1, 63),
    C.CONFIG_REQUEST_KEY_TIMEOUT: _Config(0, 0, 10),
    C.CONFIG_CERTIFICATE_TABLE_SIZE: _Config(0, 0, 1),
    C.CONFIG_APPLICATION_ZDO_FLAGS: _Config(0, 0, 0xFF),
    C.CONFIG_BROADCAST_TABLE_SIZE: _Config(64, 15, 254),
    C.CONFIG_MAC_FILTER_TABLE_SIZE: _Config(0, 0, 254),
    C.CONFIG_SUPPORTED_NETWORKS: _Config(1, 1, 2),
    C.CONFIG_SEND_MULTICASTS_TO_SLEEPY_ADDRESS: _Config(0, 0, 1),
    C.CONFIG_ZLL_GROUP_ADDRESSES: _Config(0, 0, 255),
    C.CONFIG_ZLL_RSSI_THRESHOLD: _Config(0xFF80),  # -128 dBm as the int16 it is
    C.CONFIG_MTORR_FLOW_CONTROL: _Config(1, 0, 1),
    C.CONFIG_RETRY_QUEUE_SIZE: _Config(16, 0, 255),
    C.CONFIG_NEW_BROADCAST_ENTRY_THRESHOLD: _Config(64, 0, 255),
    C.CONFIG_TRANSIENT_KEY_TIMEOUT_S: _Config(300),
    C.CONFIG_BROADCAST_MIN_ACKS_NEEDED: _Config(1, 0, 255),
    C.CONFIG_TC_REJOINS_USING_WELL_KNOWN_KEY_TIMEOUT_S: _Config(300),
    C.CONFIG_CTUNE_VALUE: _Config(0x0FFF),
    C.CONFIG_ASSUME_TC_CONCENTRATOR_TYPE: _Config(1, 0, 1),
    C.CONFIG_GP_PROXY_TABLE_SIZE: _Config(5, 0, 126),
    C.EZSP_CONFIG_GP_SINK_TABLE_SIZE: _Config(0, 0, 126),
}

P = bt.EzspPolicyId
D = bt.EzspDecisionId
_POLICIES: Final[Mapping[bt.EzspPolicyId, tuple[int, frozenset[int] | None]]] = {
    # policy: (default decision, the decisions it takes; None for a bitmask of options)
    P.TRUST_CENTER_POLICY: (
        bt.EzspDecisionBitmask.ALLOW_JOINS | bt.EzspDecisionBitmask.ALLOW_UNSECURED_REJOINS,
        None,
    ),
    P.BINDING_MODIFICATION_POLICY: (
        D.DISALLOW_BINDING_MODIFICATION,
        frozenset(
            (
                D.DISALLOW_BINDING_MODIFICATION,
                D.ALLOW_BINDING_MODIFICATION,
                D.CHECK_BINDING_MODIFICATIONS_ARE_VALID_ENDPOINT_CLUSTERS,
            )
        ),
    ),
    P.UNICAST_REPLIES_POLICY: (
        D.HOST_WILL_NOT_SUPPLY_REPLY,
        frozenset((D.HOST_WILL_NOT_SUPPLY_REPLY, D.HOST_WILL_SUPPLY_REPLY)),
    ),
    P.POLL_HANDLER_POLICY: (
        D.POLL_HANDLER_IGNORE,
        frozenset((D.POLL_HANDLER_IGNORE, D.POLL_HANDLER_CALLBACK)),
    ),
    P.MESSAGE_CONTENTS_IN_CALLBACK_POLICY: (
        D.MESSAGE_TAG_ONLY_IN_CALLBACK,
        frozenset((D.MESSAGE_TAG_ONLY_IN_CALLBACK, D.MESSAGE_TAG_AND_CONTENTS_IN_CALLBACK)),
    ),
    P.TC_KEY_REQUEST_POLICY: (
        D.ALLOW_TC_KEY_REQUESTS_AND_SEND_CURRENT_KEY,
        frozenset(
            (
                D.DENY_TC_KEY_REQUESTS,
                D.ALLOW_TC_KEY_REQUESTS_AND_SEND_CURRENT_KEY,
                D.ALLOW_TC_KEY_REQUEST_AND_GENERATE_NEW_KEY,
            )
        ),
    ),
    P.APP_KEY_REQUEST_POLICY: (
        D.DENY_APP_KEY_REQUESTS,
        frozenset((D.DENY_APP_KEY_REQUESTS, D.ALLOW_APP_KEY_REQUESTS)),
    ),
    P.PACKET_VALIDATE_LIBRARY_POLICY: (
        D.PACKET_VALIDATE_LIBRARY_CHECKS_ENABLED,
        frozenset((D.PACKET_VALIDATE_LIBRARY_CHECKS_ENABLED, D.PACKET_VALIDATE_LIBRARY_CHECKS_DISABLED)),
    ),
    P.ZLL_POLICY: (0x00, None),
    P.TC_REJOINS_USING_WELL_KNOWN_KEY_POLICY: (0x00, frozenset((0x00, 0x01))),
}

V = bt.EzspValueId
# Values the NCP keeps in RAM: (default bytes, writable). Frame counters live in NV3 tokens.
_VALUES: Final[Mapping[bt.EzspValueId, tuple[bytes, bool]]] = {
    V.VALUE_STACK_TOKEN_WRITING: (b"\x01", True),
    V.VALUE_MAXIMUM_INCOMING_TRANSFER_SIZE: ((82).to_bytes(2, "little"), True),
    V.VALUE_MAXIMUM_OUTGOING_TRANSFER_SIZE: ((82).to_bytes(2, "little"), True),
    V.VALUE_EXTENDED_SECURITY_BITMASK: (b"\x00\x00", True),
    V.VALUE_DESCRIPTOR_CAPABILITY: (b"\x00", True),
    V.VALUE_ENDPOINT_FLAGS: (b"\x00", True),
    V.VALUE_CCA_THRESHOLD: (b"\xb5", True),  # -75 dBm
    V.VALUE_ENABLE_R21_BEHAVIOR: (b"\x01", True),
    V.VALUE_NWK_KEY_TIMEOUT: (b"\x00", True),
    V.VALUE_FORCE_TX_AFTER_FAILED_CCA_ATTEMPTS: (b"\x00", True),
    V.VALUE_TRANSIENT_KEY_TIMEOUT_S: ((300).to_bytes(2, "little"), True),
    V.VALUE_END_DEVICE_KEEP_ALIVE_SUPPORT_MODE: (b"\x03", True),
    V.VALUE_TRANSIENT_DEVICE_TIMEOUT: ((10000).to_bytes(2, "little"), True),
    V.VALUE_KEY_STORAGE_VERSION: (b"\x01", False),
    V.VALUE_MAX_NWK_RETRIES: (b"\x03", True),
}
_FRAME_COUNTER_VALUES: Final = {
    V.VALUE_NWK_FRAME_COUNTER: bt.NV3KeyId.NVM3KEY_STACK_NONCE_COUNTER,
    V.VALUE_APS_FRAME_COUNTER: bt.NV3KeyId.NVM3KEY_STACK_APS_FRAME_COUNTER,
}

M = bt.EzspMfgTokenId
_MFG_SIZES: Final[Mapping[bt.EzspMfgTokenId, int]] = {
    M.MFG_CUSTOM_VERSION: 2,
    M.MFG_STRING: 16,
    M.MFG_BOARD_NAME: 16,
    M.MFG_MANUF_ID: 2,
    M.MFG_PHY_CONFIG: 2,
    M.MFG_BOOTLOAD_AES_KEY: 16,
    M.MFG_ASH_CONFIG: 40,
    M.MFG_STORAGE: 0,
    M.STACK_CAL_DATA: 2,
    M.MFG_CBKE_DATA: 92,
    M.MFG_INSTALLATION_CODE: 20,
    M.STACK_CAL_FILTER: 1,
    M.MFG_CUSTOM_EUI_64: 8,
    M.MFG_CTUNE: 2,
}

K = bt.NV3KeyId


@dataclass(frozen=True, slots=True)
class _Token:
    """One NV3 token the NCP lists: its NVM3 key, size, whether a counter, and its default."""

    key: bt.NV3KeyId
    size: int
    is_counter: bool
    default: bytes


_TOKENS: Final = (
    _Token(K.NVM3KEY_STACK_NVDATA_VERSION, 4, False, (0x03FC).to_bytes(4, "little")),
    _Token(K.NVM3KEY_STACK_BOOT_COUNTER, 2, True, b"\x00\x00"),
    _Token(K.NVM3KEY_STACK_NONCE_COUNTER, 4, True, b"\x00" * 4),
    _Token(K.NVM3KEY_STACK_APS_FRAME_COUNTER, 4, True, b"\x00" * 4),
    # active channels, manager node id, update id, padding: written by formNetwork
    _Token(K.NVM3KEY_STACK_NETWORK_MANAGEMENT, 8, False, bytes(8)),
    _Token(K.NVM3KEY_STACK_RESTORED_EUI64, 8, False, bytes([_ERASED]) * 8),
)
_TOKEN_BY_KEY: Final[Mapping[int, _Token]] = {int(token.key): token for token in _TOKENS}
_OUTGOING_COUNTERS: Final = {K.NVM3KEY_STACK_NONCE_COUNTER, K.NVM3KEY_STACK_APS_FRAME_COUNTER}
# For the stack's basic (not indexed) tokens, the NVM3 key is the stack domain | the creator code
# (bellows's NV3KeyId table: CREATOR_STACK_RESTORED_EUI64 0xE12A, NVM3KEY_... 0x1E12A).
_NVM3_STACK_DOMAIN: Final = 0x10000


def nvm3_key(token: int) -> int:
    """The NVM3 key of a basic stack token named by its NVM3 key or by its creator code."""
    return token if token >= _NVM3_STACK_DOMAIN else _NVM3_STACK_DOMAIN | token


@dataclass(frozen=True, slots=True)
class ProvidedToken:
    """An NV3 token whose data another part of the NCP keeps (the network's node data, say)."""

    key: int
    size: int
    read: Callable[[], bytes]
    write: Callable[[bytes], None] | None
    factory_reset: Callable[[], None] | None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint the host added: what the NCP's ZDO describes for it."""

    endpoint: int
    profile_id: int
    device_id: int
    device_version: int
    input_clusters: tuple[int, ...]
    output_clusters: tuple[int, ...]


def _padded(text: str, size: int) -> bytes:
    return text.encode().ljust(size, bytes([_ERASED]))[:size]


def _default_mfg_tokens() -> dict[bt.EzspMfgTokenId, bytes]:
    tokens = {token: bytes([_ERASED]) * size for token, size in _MFG_SIZES.items()}
    tokens[M.MFG_STRING] = _padded(MANUFACTURER, _MFG_SIZES[M.MFG_STRING])
    tokens[M.MFG_BOARD_NAME] = _padded(BOARD_NAME, _MFG_SIZES[M.MFG_BOARD_NAME])
    return tokens


def _free_multicast_entry() -> bt.EmberMulticastTableEntry:
    return bt.EmberMulticastTableEntry(multicastId=0x0000, endpoint=0, networkIndex=0)


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A status whose EZSP 14 form the firmware documents apart from bellows's general mapping."""

    v13: bt.EzspStatus | bt.EmberStatus
    v14: bt.sl_Status


def _status(value: Any, protocol_version: int) -> Any:
    if isinstance(value, _Refusal):
        return value.v14 if protocol_version >= 14 else value.v13
    if protocol_version >= 14 and isinstance(value, bt.EzspStatus | bt.EmberStatus):
        return bt.sl_Status.from_ember_status(value)
    return value


# sl_zigbee_set_outgoing_nwk/aps_frame_counter: only with no network and below 0xFFFFFFFF,
# otherwise SL_STATUS_INVALID_STATE (EmberZNet 8 API reference); EZSP 13 says it in EzspStatus.
_FRAME_COUNTER_REFUSED: Final = _Refusal(bt.EzspStatus.ERROR_INVALID_CALL, bt.sl_Status.INVALID_STATE)


class StackConfig:
    """The NCP's stack settings, tokens and counters, answering the EZSP commands that read and set them."""

    def __init__(self, eui64: bt.EUI64, *, state: dict[str, Any] | None = None) -> None:
        self._factory_eui64 = eui64
        self._mfg_tokens = _default_mfg_tokens()
        self._tokens: dict[tuple[int, int], bytes] = {(t.key, 0): t.default for t in _TOKENS}
        self._changes = 0
        if state is not None:
            self._load(state)
        self.network_up = False
        """Set by the network front-end when the stack reports NETWORK_UP; cleared by a reset."""
        self._configs: dict[bt.EzspConfigId, int] = {}
        self._policies: dict[bt.EzspPolicyId, int] = {}
        self._values: dict[bt.EzspValueId, bytes] = {}
        self._counters = [0] * _COUNTER_COUNT
        self._endpoints: dict[int, Endpoint] = {}
        self._multicast: list[bt.EmberMulticastTableEntry] = []
        self._provided: dict[int, ProvidedToken] = {}
        self.manufacturer_code = 0x1002  # Silicon Labs, until the host sets another
        self._eui64 = eui64
        self.reset()

    # -- the NCP's life ----------------------------------------------------------------------

    def reset(self) -> None:
        """The NCP rebooted: RAM settings back to their defaults, tokens kept."""
        self.network_up = False
        self._configs = {config_id: config.default for config_id, config in _CONFIGS.items()}
        self._policies = {policy: default for policy, (default, _) in _POLICIES.items()}
        self._values = {value_id: default for value_id, (default, _) in _VALUES.items()}
        self._counters = [0] * _COUNTER_COUNT
        self._endpoints = {}
        # The multicast table is RAM, sized by the configuration: the host fills it after a boot.
        self._multicast = [
            _free_multicast_entry() for _ in range(self._configs[C.CONFIG_MULTICAST_TABLE_SIZE])
        ]
        self.manufacturer_code = 0x1002
        self._eui64 = self._boot_eui64()
        boots = int.from_bytes(self._tokens[(K.NVM3KEY_STACK_BOOT_COUNTER, 0)], "little")
        self._write_nv3(K.NVM3KEY_STACK_BOOT_COUNTER, min(boots + 1, 0xFFFF).to_bytes(2, "little"))

    def _boot_eui64(self) -> bt.EUI64:
        """The EUI64 the NCP takes at boot: the restored one, else the custom one, else its own."""
        restored, _ = bt.EUI64.deserialize(self._tokens[(K.NVM3KEY_STACK_RESTORED_EUI64, 0)])
        if restored != _UNSET_EUI64:
            return restored
        custom, _ = bt.EUI64.deserialize(self._mfg_tokens[M.MFG_CUSTOM_EUI_64])
        if custom != _UNSET_EUI64:
            return custom
        return self._factory_eui64

    @property
    def eui64(self) -> bt.EUI64:
        """The NCP's EUI64 since its last boot."""
        return self._eui64

    @property
    def endpoints(self) -> Mapping[int, Endpoint]:
        """The endpoints the host added since the NCP's last boot."""
        return self._endpoints

    def multicast_groups(self, endpoint: int) -> frozenset[int]:
        """The groups the host subscribed an endpoint to (the NCP delivers their messages)."""
        return frozenset(e.multicastId for e in self._multicast if e.endpoint == endpoint)

    def config_value(self, name: str) -> int:
        """What the host configured (e.g. "CONFIG_MAX_END_DEVICE_CHILDREN"); KeyError if unknown."""
        return self._configs[bt.EzspConfigId[name]]

    def policy(self, name: str) -> int:
        """The decision the host set for a policy (e.g. "TRUST_CENTER_POLICY")."""
        return self._policies[bt.EzspPolicyId[name]]

    def count(self, counter: str) -> None:
        """Bump one counter by its EmberCounterType name; KeyError for a name that is none."""
        index = bt.EmberCounterType[counter]
        # Ember's counters are uint16 that stop at 0xFFFF rather than wrap to a small number.
        self._counters[index] = min(self._counters[index] + 1, 0xFFFF)

    # -- tokens, for the network front-end ----------------------------------------------------

    def token(self, key: int, index: int = 0) -> bytes | None:
        """An NV3 token's data (key by NVM3 key or creator code); None if the NCP has no such token."""
        provided = self._provided.get(nvm3_key(key))
        if provided is not None:
            return provided.read() if index == 0 else None
        return self._tokens.get((nvm3_key(key), index))

    def provide_token(
        self,
        key: int,
        size: int,
        read: Callable[[], bytes],
        write: Callable[[bytes], None] | None = None,
        factory_reset: Callable[[], None] | None = None,
    ) -> None:
        """Serve an NV3 token from another part of the NCP's state (e.g. the network front-end's
        NODE_DATA or TRUST_CENTER), listed and read like the others; not in `to_json`.
        `factory_reset` runs on the host's tokenFactoryReset."""
        self._provided[nvm3_key(key)] = ProvidedToken(nvm3_key(key), size, read, write, factory_reset)

    def set_token(self, key: int, data: bytes, index: int = 0) -> None:
        """Write an NV3 token the NCP has (what the stack itself does, e.g. on formNetwork)."""
        token = _TOKEN_BY_KEY[nvm3_key(key)]
        if len(data) != token.size:
            raise ValueError(f"{token.key.name} holds {token.size} bytes, not {len(data)}")
        self._write_nv3(token.key, bytes(data), index)

    @property
    def nwk_frame_counter(self) -> int:
        """The outgoing NWK frame counter (NV3, survives reboots)."""
        return int.from_bytes(self._tokens[(K.NVM3KEY_STACK_NONCE_COUNTER, 0)], "little")

    @nwk_frame_counter.setter
    def nwk_frame_counter(self, value: int) -> None:
        self.set_token(K.NVM3KEY_STACK_NONCE_COUNTER, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    @property
    def aps_frame_counter(self) -> int:
        """The outgoing APS frame counter of the trust-center link key (NV3)."""
        return int.from_bytes(self._tokens[(K.NVM3KEY_STACK_APS_FRAME_COUNTER, 0)], "little")

    @aps_frame_counter.setter
    def aps_frame_counter(self, value: int) -> None:
        self.set_token(K.NVM3KEY_STACK_APS_FRAME_COUNTER, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def to_json(self) -> dict[str, Any]:
        """The persistent part (manufacturing and NV3 tokens), JSON-serialisable."""
        return {
            "mfg_tokens": {token.name: data.hex() for token, data in self._mfg_tokens.items()},
            "nv3_tokens": {
                f"{bt.NV3KeyId(key).name}/{index}": data.hex() for (key, index), data in self._tokens.items()
            },
        }

    @property
    def changes(self) -> int:
        """How many token writes so far: the persistent part changed when this did."""
        return self._changes

    def _write_nv3(self, key: int, data: bytes, index: int = 0) -> None:
        self._tokens[(key, index)] = data
        self._changes += 1

    def _load(self, state: dict[str, Any]) -> None:
        """Tokens from `to_json()`'s output; ValueError names what is wrong."""
        try:
            for name, data in dict(state.get("mfg_tokens", {})).items():
                token = M[name]
                if len(bytes.fromhex(data)) != _MFG_SIZES[token]:
                    raise ValueError(f"{name} holds {_MFG_SIZES[token]} bytes")
                self._mfg_tokens[token] = bytes.fromhex(data)
            for name_index, data in dict(state.get("nv3_tokens", {})).items():
                name, index = name_index.rsplit("/", 1)
                self._tokens[(K[name], int(index))] = bytes.fromhex(data)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"EZSP NCP tokens: {exc!r} in {state!r}") from exc

    # -- EZSP commands ------------------------------------------------------------------------

    def handlers(self, protocol_version: int) -> dict[str, Handler]:
        """The command handlers for one protocol version (13 or 14), keyed by bellows command name."""
        if protocol_version not in _COMMANDS:
            raise ValueError(f"EZSP protocol version {protocol_version}; this NCP speaks 13 and 14")
        commands = _COMMANDS[protocol_version]
        cores: dict[str, Callable[[dict[str, Any]], _Result]] = {
            "getConfigurationValue": self._get_configuration_value,
            "setConfigurationValue": self._set_configuration_value,
            "getPolicy": self._get_policy,
            "setPolicy": self._set_policy,
            "getValue": lambda params: self._get_value(params, protocol_version),
            "setValue": self._set_value,
            "getExtendedValue": self._get_extended_value,
            "getMfgToken": self._get_mfg_token,
            "setMfgToken": self._set_mfg_token,
            "getTokenCount": lambda _params: {"count": len(_TOKENS) + len(self._provided)},
            "getTokenInfo": self._get_token_info,
            "getTokenData": self._get_token_data,
            "setTokenData": self._set_token_data,
            "tokenFactoryReset": self._token_factory_reset,
            "readCounters": lambda _params: {"values": list(self._counters)},
            "readAndClearCounters": self._read_and_clear_counters,
            "getEui64": lambda _params: {"eui64": self._eui64},
            "customFrame": lambda _params: {"status": bt.EmberStatus.INVALID_CALL, "reply": b""},
            "addEndpoint": self._add_endpoint,
            "setManufacturerCode": self._set_manufacturer_code,
            "getMulticastTableEntry": self._get_multicast_table_entry,
            "setMulticastTableEntry": self._set_multicast_table_entry,
        }
        return {
            name: self._adapted(core, commands[name][2], protocol_version) for name, core in cores.items()
        }

    @staticmethod
    def _adapted(core: Callable[[dict[str, Any]], _Result], reply: Any, protocol_version: int) -> Handler:
        """A handler giving the fields in the version's reply order, its status type and all."""
        fields = list(reply) if isinstance(reply, dict) else [f.name for f in reply.fields]

        def handler(params: dict[str, Any]) -> tuple[Any, ...]:
            result = core(params)
            # A status the core does not name is one that EZSP 14 added to a reply: it succeeded.
            # Any other field left out is absent from the reply (getTokenData after a failure).
            values = [
                result.get(name, bt.EzspStatus.SUCCESS if name == "status" else None) for name in fields
            ]
            return tuple(_status(value, protocol_version) for value in values)

        return handler

    def _get_configuration_value(self, params: dict[str, Any]) -> _Result:
        config_id = params["configId"]
        if config_id not in self._configs:
            return {"status": bt.EzspStatus.ERROR_INVALID_ID, "value": 0}
        return {"status": bt.EzspStatus.SUCCESS, "value": self._configs[config_id]}

    def _set_configuration_value(self, params: dict[str, Any]) -> _Result:
        config_id, value = params["configId"], params["value"]
        config = _CONFIGS.get(config_id)
        if config is None:
            status = bt.EzspStatus.ERROR_INVALID_ID
        elif self.network_up:
            status = bt.EzspStatus.ERROR_INVALID_CALL
        elif not config.low <= value <= config.high:
            status = bt.EzspStatus.ERROR_INVALID_VALUE
        else:
            self._configs[config_id] = value
            if config_id == C.CONFIG_MULTICAST_TABLE_SIZE:  # the table is allocated at this size
                self._multicast = [_free_multicast_entry() for _ in range(value)]
            status = bt.EzspStatus.SUCCESS
        if status != bt.EzspStatus.SUCCESS:
            LOGGER.debug("EZSP: setConfigurationValue %s = %d refused: %s", config_id, value, status)
        return {"status": status}

    def _get_policy(self, params: dict[str, Any]) -> _Result:
        policy = params["policyId"]
        if policy not in self._policies:
            return {"status": bt.EzspStatus.ERROR_INVALID_ID, "decisionId": 0}
        return {"status": bt.EzspStatus.SUCCESS, "decisionId": self._policies[policy]}

    def _set_policy(self, params: dict[str, Any]) -> _Result:
        policy, decision = params["policyId"], int(params["decisionId"])
        if policy not in _POLICIES:
            return {"status": bt.EzspStatus.ERROR_INVALID_ID}
        allowed = _POLICIES[policy][1]
        if allowed is not None and decision not in allowed:
            return {"status": bt.EzspStatus.ERROR_INVALID_VALUE}
        self._policies[policy] = decision
        return {"status": bt.EzspStatus.SUCCESS}

    def _get_value(self, params: dict[str, Any], protocol_version: int) -> _Result:
        value_id = params["valueId"]
        if value_id == V.VALUE_VERSION_INFO:
            data = _VERSION_INFO[protocol_version]
        elif value_id == V.VALUE_FREE_BUFFERS:
            data = bytes((_FREE_BUFFERS,))
        elif value_id in _FRAME_COUNTER_VALUES:
            data = self._tokens[(_FRAME_COUNTER_VALUES[value_id], 0)]
        elif value_id in self._values:
            data = self._values[value_id]
        else:
            return {"status": bt.EzspStatus.ERROR_INVALID_ID, "value": b""}
        return {"status": bt.EzspStatus.SUCCESS, "value": data}

    def _set_value(self, params: dict[str, Any]) -> _Result:
        value_id, data = params["valueId"], bytes(params["value"])
        if value_id in _FRAME_COUNTER_VALUES:
            if len(data) != 4:
                return {"status": bt.EzspStatus.ERROR_INVALID_VALUE}
            # The outgoing frame counters may only be set before the node is on a network, and
            # never to the last value (the next frame would roll the counter over).
            if self.network_up or data == b"\xff" * 4:
                return {"status": _FRAME_COUNTER_REFUSED}
            self._write_nv3(_FRAME_COUNTER_VALUES[value_id], data)
            return {"status": bt.EzspStatus.SUCCESS}
        known = _VALUES.get(value_id)
        if known is None or not known[1]:
            return {"status": bt.EzspStatus.ERROR_INVALID_ID}
        if len(data) != len(known[0]):
            return {"status": bt.EzspStatus.ERROR_INVALID_VALUE}
        self._values[value_id] = data
        return {"status": bt.EzspStatus.SUCCESS}

    def _get_extended_value(self, params: dict[str, Any]) -> _Result:
        value_id = params["valueId"]
        if value_id == bt.EzspExtendedValueId.EXTENDED_VALUE_ENDPOINT_FLAGS:
            endpoint = params["characteristics"]
            if endpoint in self._endpoints:
                return {"status": bt.EzspStatus.SUCCESS, "value": b"\x01"}  # enabled
        return {"status": bt.EzspStatus.ERROR_INVALID_ID, "value": b""}

    def _get_mfg_token(self, params: dict[str, Any]) -> _Result:
        return {"tokenData": self._mfg_tokens.get(params["tokenId"], b"")}

    def _set_mfg_token(self, params: dict[str, Any]) -> _Result:
        token, data = params["tokenId"], bytes(params["tokenData"])
        current = self._mfg_tokens.get(token)
        if current is None or len(data) != len(current):
            return {"status": bt.EmberStatus.BAD_ARGUMENT}
        if current != bytes([_ERASED]) * len(current):
            # Flash bits only go from 1 to 0 without an erase: a written token stays.
            return {"status": bt.EmberStatus.ERR_FLASH_WRITE_INHIBITED}
        self._mfg_tokens[token] = data
        self._changes += 1
        return {"status": bt.EmberStatus.SUCCESS}

    def _get_token_info(self, params: dict[str, Any]) -> _Result:
        index = params["index"]
        listed = [(int(t.key), t.size, t.is_counter) for t in _TOKENS]
        listed += [(p.key, p.size, False) for p in self._provided.values()]
        if index >= len(listed):
            return {
                "status": bt.EmberStatus.INDEX_OUT_OF_RANGE,
                "token_info": bt.EmberTokenInfo(nvm3Key=0, isCnt=False, isIdx=False, size=0, arraySize=0),
            }
        key, size, is_counter = listed[index]
        info = bt.EmberTokenInfo(nvm3Key=key, isCnt=is_counter, isIdx=False, size=size, arraySize=1)
        return {"status": bt.EmberStatus.SUCCESS, "token_info": info}

    def _get_token_data(self, params: dict[str, Any]) -> _Result:
        data = self.token(params["token"], params["index"])
        if data is None:
            return {"status": bt.EmberStatus.ERR_FATAL}
        return {"status": bt.EmberStatus.SUCCESS, "value": data}

    def _set_token_data(self, params: dict[str, Any]) -> _Result:
        data = bytes(params["token_data"])
        provided = self._provided.get(nvm3_key(params["token"]))
        if provided is not None:
            if provided.write is None or params["index"] != 0 or len(data) != provided.size:
                return {"status": bt.EmberStatus.ERR_FATAL}
            provided.write(data)
            return {"status": bt.EmberStatus.SUCCESS}
        token = _TOKEN_BY_KEY.get(nvm3_key(params["token"]))
        if token is None or params["index"] != 0 or len(data) != token.size:
            return {"status": bt.EmberStatus.ERR_FATAL}
        self._write_nv3(token.key, data)
        return {"status": bt.EmberStatus.SUCCESS}

    def _token_factory_reset(self, params: dict[str, Any]) -> _Result:
        for token in _TOKENS:
            if params["excludeOutgoingFC"] and token.key in _OUTGOING_COUNTERS:
                continue
            if params["excludeBootCounter"] and token.key == K.NVM3KEY_STACK_BOOT_COUNTER:
                continue
            self._write_nv3(token.key, token.default)
        for provided in self._provided.values():
            if provided.factory_reset is not None:
                provided.factory_reset()
        return {}

    def _read_and_clear_counters(self, _params: dict[str, Any]) -> _Result:
        values = list(self._counters)
        self._counters = [0] * _COUNTER_COUNT
        return {"values": values}

    def _add_endpoint(self, params: dict[str, Any]) -> _Result:
        if self.network_up:
            return {"status": bt.EzspStatus.ERROR_INVALID_CALL}
        endpoint = params["endpoint"]
        # 1-240 for applications, 242 for Green Power (bellows adds it); 0 and 255 are no endpoints.
        if endpoint in self._endpoints or not 1 <= endpoint <= 254:
            return {"status": bt.EzspStatus.ERROR_INVALID_VALUE}
        # Both cluster lists are count-less on the wire: a schema-driven reader puts all the
        # clusters in the first list, so split them by the two counts.
        clusters = [*params["inputClusterList"], *params["outputClusterList"]]
        inputs = params["inputClusterCount"]
        self._endpoints[endpoint] = Endpoint(
            endpoint=endpoint,
            profile_id=params["profileId"],
            device_id=params["deviceId"],
            device_version=params["deviceVersion"],
            input_clusters=tuple(clusters[:inputs]),
            output_clusters=tuple(clusters[inputs : inputs + params["outputClusterCount"]]),
        )
        return {"status": bt.EzspStatus.SUCCESS}

    def _get_multicast_table_entry(self, params: dict[str, Any]) -> _Result:
        index = params["index"]
        if index >= len(self._multicast):
            return {"status": bt.EmberStatus.INDEX_OUT_OF_RANGE, "value": _free_multicast_entry()}
        return {"status": bt.EmberStatus.SUCCESS, "value": self._multicast[index]}

    def _set_multicast_table_entry(self, params: dict[str, Any]) -> _Result:
        index, entry = params["index"], params["value"]
        if index >= len(self._multicast):
            return {"status": bt.EmberStatus.INDEX_OUT_OF_RANGE}
        self._multicast[index] = bt.EmberMulticastTableEntry(
            multicastId=entry.multicastId, endpoint=entry.endpoint, networkIndex=entry.networkIndex or 0
        )
        return {"status": bt.EmberStatus.SUCCESS}

    def _set_manufacturer_code(self, params: dict[str, Any]) -> _Result:
        self.manufacturer_code = params["code"]
        return {}
