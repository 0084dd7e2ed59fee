"""The NCP's stack settings, tokens and counters: the handlers as the command layer calls them
(parameters by bellows name, read with bellows's own tables), for EZSP 13 and 14, and unmodified
bellows reading and writing them over a pty (EZSP 13, the version the command layer speaks)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import bellows.types as bt
import pytest
from bellows.ezsp import EZSP
from bellows.ezsp.v13.commands import COMMANDS as COMMANDS_V13
from bellows.ezsp.v14.commands import COMMANDS as COMMANDS_V14
from bellows.ezsp.xncp import FirmwareFeatures
from bellows.multicast import Multicast

from tests.ezsp_support import bellows_connected, ncp_listening
from z2m_qbkg40lm.sim.ezsp.ncp import EzspNcp
from z2m_qbkg40lm.sim.ezsp.stack_config import BOARD_NAME, MANUFACTURER, StackConfig

TIMEOUT = 10.0
NCP_EUI64 = bt.EUI64.convert("00:0B:57:FF:FE:12:34:56")
OTHER_EUI64 = bt.EUI64.convert("00:12:4B:00:11:22:33:44")
_TABLES = {13: COMMANDS_V13, 14: COMMANDS_V14}


def call(config: StackConfig, version: int, name: str, **params: Any) -> tuple[Any, ...]:
    """Run one command as the command layer does: parameters through the wire format and back,
    the result serialised against the version's reply schema (so a wrong type fails here)."""
    _, request, reply = _TABLES[version][name]
    data = bt.serialize_dict((), params, request)
    read, rest = bt.deserialize_dict(data, request)
    assert rest == b""
    result = config.handlers(version)[name](read)
    if isinstance(reply, dict):
        assert len(result) == len(reply)
        bt.serialize_dict(result, {}, reply)
    else:
        reply(*result).serialize()
    return result


# -- configuration values ----------------------------------------------------------------------


@pytest.mark.parametrize(("version", "ok"), [(13, bt.EzspStatus.SUCCESS), (14, bt.sl_Status.OK)])
def test_configuration_values_start_at_the_zbt1_build_defaults(version: int, ok: Any) -> None:
    config = StackConfig(NCP_EUI64)
    C = bt.EzspConfigId
    for config_id, value in [
        (C.CONFIG_KEY_TABLE_SIZE, 12),
        (C.CONFIG_MAX_END_DEVICE_CHILDREN, 32),
        (C.CONFIG_SOURCE_ROUTE_TABLE_SIZE, 200),
        (C.CONFIG_SECURITY_LEVEL, 5),
        (C.CONFIG_STACK_PROFILE, 2),
    ]:
        status, got = call(config, version, "getConfigurationValue", configId=config_id)
        assert (status, got) == (ok, value), config_id.name
        assert type(status) is type(ok)


@pytest.mark.parametrize(
    ("version", "invalid_id"),
    [(13, bt.EzspStatus.ERROR_INVALID_ID), (14, bt.sl_Status.INVALID_PARAMETER)],
)
def test_ids_the_74_firmware_dropped_are_unknown(version: int, invalid_id: Any) -> None:
    config = StackConfig(NCP_EUI64)
    C = bt.EzspConfigId
    for config_id in (C.CONFIG_PACKET_BUFFER_COUNT, C.CONFIG_END_DEVICE_POLL_TIMEOUT_SHIFT):
        assert call(config, version, "getConfigurationValue", configId=config_id)[0] == invalid_id
        assert call(config, version, "setConfigurationValue", configId=config_id, value=255) == (invalid_id,)


def test_a_configuration_value_is_set_in_range_and_only_before_the_network_is_up() -> None:
    config = StackConfig(NCP_EUI64)
    C = bt.EzspConfigId
    assert call(config, 13, "setConfigurationValue", configId=C.CONFIG_MAX_END_DEVICE_CHILDREN, value=48) == (
        bt.EzspStatus.SUCCESS,
    )
    assert config.config_value("CONFIG_MAX_END_DEVICE_CHILDREN") == 48
    assert call(config, 13, "setConfigurationValue", configId=C.CONFIG_MAX_END_DEVICE_CHILDREN, value=65) == (
        bt.EzspStatus.ERROR_INVALID_VALUE,
    )
    assert call(config, 13, "setConfigurationValue", configId=C.CONFIG_SECURITY_LEVEL, value=0) == (
        bt.EzspStatus.ERROR_INVALID_VALUE,
    )
    config.network_up = True
    assert call(config, 13, "setConfigurationValue", configId=C.CONFIG_MAX_END_DEVICE_CHILDREN, value=16) == (
        bt.EzspStatus.ERROR_INVALID_CALL,
    )
    assert config.config_value("CONFIG_MAX_END_DEVICE_CHILDREN") == 48
    config.reset()  # a reboot: RAM defaults back, and the host may configure again
    assert not config.network_up
    assert config.config_value("CONFIG_MAX_END_DEVICE_CHILDREN") == 32
    assert call(config, 14, "setConfigurationValue", configId=C.CONFIG_MAX_END_DEVICE_CHILDREN, value=16) == (
        bt.sl_Status.OK,
    )


# -- policies and values -----------------------------------------------------------------------


def test_policies_take_their_decisions_and_go_back_to_defaults_on_reboot() -> None:
    config = StackConfig(NCP_EUI64)
    P, D = bt.EzspPolicyId, bt.EzspDecisionId
    assert call(config, 13, "getPolicy", policyId=P.TC_KEY_REQUEST_POLICY) == (
        bt.EzspStatus.SUCCESS,
        D.ALLOW_TC_KEY_REQUESTS_AND_SEND_CURRENT_KEY,
    )
    assert call(
        config, 13, "setPolicy", policyId=P.APP_KEY_REQUEST_POLICY, decisionId=D.ALLOW_APP_KEY_REQUESTS
    ) == (bt.EzspStatus.SUCCESS,)
    assert call(config, 14, "getPolicy", policyId=P.APP_KEY_REQUEST_POLICY) == (
        bt.sl_Status.OK,
        D.ALLOW_APP_KEY_REQUESTS,
    )
    # A decision that belongs to another policy, and a policy the NCP does not have
    assert call(
        config, 13, "setPolicy", policyId=P.APP_KEY_REQUEST_POLICY, decisionId=D.POLL_HANDLER_IGNORE
    ) == (bt.EzspStatus.ERROR_INVALID_VALUE,)
    assert call(config, 13, "setPolicy", policyId=P.RF4CE_DISCOVERY_POLICY, decisionId=0x70) == (
        bt.EzspStatus.ERROR_INVALID_ID,
    )
    # The trust centre policy is a bitmask of options (bellows writes its decisions there too)
    assert call(config, 13, "setPolicy", policyId=P.TRUST_CENTER_POLICY, decisionId=0x0001) == (
        bt.EzspStatus.SUCCESS,
    )
    assert config.policy("TRUST_CENTER_POLICY") == 0x0001
    config.reset()
    assert config.policy("APP_KEY_REQUEST_POLICY") == D.DENY_APP_KEY_REQUESTS


@pytest.mark.parametrize(("version", "expected"), [(13, "7.4.4.0 build 0"), (14, "8.0.2.0 build 0")])
def test_version_info_names_the_stack_release(version: int, expected: str) -> None:
    status, data = call(
        StackConfig(NCP_EUI64), version, "getValue", valueId=bt.EzspValueId.VALUE_VERSION_INFO
    )
    assert bt.sl_Status.from_ember_status(status) == bt.sl_Status.OK
    info = bytes(data)
    build, release = int.from_bytes(info[0:2], "little"), ".".join(str(part) for part in info[2:6])
    assert f"{release} build {build}" == expected


def test_values_are_read_written_and_refused_as_the_firmware_does() -> None:
    config = StackConfig(NCP_EUI64)
    V = bt.EzspValueId
    force_tx = V.VALUE_FORCE_TX_AFTER_FAILED_CCA_ATTEMPTS
    assert call(config, 13, "getValue", valueId=force_tx) == (bt.EzspStatus.SUCCESS, b"\x00")
    assert call(config, 13, "setValue", valueId=force_tx, value=b"\x01") == (bt.EzspStatus.SUCCESS,)
    assert call(config, 13, "getValue", valueId=force_tx) == (bt.EzspStatus.SUCCESS, b"\x01")
    assert call(config, 13, "setValue", valueId=force_tx, value=b"\x01\x00") == (
        bt.EzspStatus.ERROR_INVALID_VALUE,
    )
    assert call(config, 13, "setValue", valueId=V.VALUE_VERSION_INFO, value=b"\x00" * 7) == (
        bt.EzspStatus.ERROR_INVALID_ID,
    )
    assert call(config, 13, "getValue", valueId=V.VALUE_RF4CE_BASE_CHANNEL) == (
        bt.EzspStatus.ERROR_INVALID_ID,
        b"",
    )
    status, free = call(config, 14, "getValue", valueId=V.VALUE_FREE_BUFFERS)
    assert status == bt.sl_Status.OK and len(free) == 1 and free[0] > 0
    config.reset()
    assert call(config, 13, "getValue", valueId=force_tx) == (bt.EzspStatus.SUCCESS, b"\x00")


def test_frame_counters_are_set_before_the_network_is_up_and_survive_a_restart() -> None:
    config = StackConfig(NCP_EUI64)
    V = bt.EzspValueId
    counter = (123456).to_bytes(4, "little")
    assert call(config, 13, "setValue", valueId=V.VALUE_NWK_FRAME_COUNTER, value=counter) == (
        bt.EzspStatus.SUCCESS,
    )
    assert call(
        config, 14, "setValue", valueId=V.VALUE_APS_FRAME_COUNTER, value=(7).to_bytes(4, "little")
    ) == (bt.sl_Status.OK,)
    assert (config.nwk_frame_counter, config.aps_frame_counter) == (123456, 7)
    assert call(config, 14, "setValue", valueId=V.VALUE_NWK_FRAME_COUNTER, value=b"\xff" * 4) == (
        bt.sl_Status.INVALID_STATE,
    )
    config.network_up = True
    assert call(config, 13, "setValue", valueId=V.VALUE_NWK_FRAME_COUNTER, value=bytes(4)) == (
        bt.EzspStatus.ERROR_INVALID_CALL,
    )
    assert call(config, 14, "setValue", valueId=V.VALUE_APS_FRAME_COUNTER, value=bytes(4)) == (
        bt.sl_Status.INVALID_STATE,
    )
    config.nwk_frame_counter += 1  # what the network front-end does on each send
    restarted = StackConfig(NCP_EUI64, state=json.loads(json.dumps(config.to_json())))
    assert (restarted.nwk_frame_counter, restarted.aps_frame_counter) == (123457, 7)


def test_token_writes_are_counted_and_ram_settings_are_not() -> None:
    config = StackConfig(NCP_EUI64)
    before = config.changes
    call(config, 13, "setConfigurationValue", configId=bt.EzspConfigId.CONFIG_KEY_TABLE_SIZE, value=16)
    config.count("COUNTER_MAC_RX_UNICAST")
    assert config.changes == before  # nothing persistent moved
    config.nwk_frame_counter = 5
    call(config, 13, "setMfgToken", tokenId=bt.EzspMfgTokenId.MFG_MANUF_ID, tokenData=b"\x02\x10")
    assert config.changes == before + 2


def test_every_boot_is_counted_in_nv3() -> None:
    config = StackConfig(NCP_EUI64)
    boots = config.token(bt.NV3KeyId.NVM3KEY_STACK_BOOT_COUNTER)
    config.reset()
    config.reset()
    assert boots == b"\x01\x00"
    assert (
        StackConfig(NCP_EUI64, state=config.to_json()).token(bt.NV3KeyId.CREATOR_STACK_BOOT_COUNTER)
        == b"\x04\x00"
    )


def test_a_broken_state_is_named_and_an_unknown_version_refused() -> None:
    with pytest.raises(ValueError, match="MFG_NO_SUCH_TOKEN"):
        StackConfig(NCP_EUI64, state={"mfg_tokens": {"MFG_NO_SUCH_TOKEN": "00"}})
    with pytest.raises(ValueError, match="MFG_STRING holds 16 bytes"):
        StackConfig(NCP_EUI64, state={"mfg_tokens": {"MFG_STRING": "00"}})
    with pytest.raises(ValueError, match="speaks 13 and 14"):
        StackConfig(NCP_EUI64).handlers(12)


# -- manufacturing tokens, NV3 tokens, the EUI64 -------------------------------------------------


def test_manufacturing_tokens_are_fixed_size_and_written_once() -> None:
    config = StackConfig(NCP_EUI64)
    M = bt.EzspMfgTokenId
    (board,) = call(config, 13, "getMfgToken", tokenId=M.MFG_BOARD_NAME)
    assert len(board) == 16 and board.rstrip(b"\xff") == BOARD_NAME.encode()
    assert call(config, 13, "getMfgToken", tokenId=M.MFG_CUSTOM_EUI_64) == (b"\xff" * 8,)
    custom = OTHER_EUI64.serialize()
    assert call(config, 13, "setMfgToken", tokenId=M.MFG_CUSTOM_EUI_64, tokenData=custom[:4]) == (
        bt.EmberStatus.BAD_ARGUMENT,
    )
    assert call(config, 13, "setMfgToken", tokenId=M.MFG_CUSTOM_EUI_64, tokenData=custom) == (
        bt.EmberStatus.SUCCESS,
    )
    assert call(config, 14, "setMfgToken", tokenId=M.MFG_CUSTOM_EUI_64, tokenData=NCP_EUI64.serialize()) == (
        bt.sl_Status.from_ember_status(bt.EmberStatus.ERR_FLASH_WRITE_INHIBITED),
    )
    assert call(config, 13, "getEui64") == (NCP_EUI64,)  # until the NCP reboots
    config.reset()
    assert call(config, 13, "getEui64") == (OTHER_EUI64,)
    assert StackConfig(NCP_EUI64, state=config.to_json()).eui64 == OTHER_EUI64


def test_nv3_tokens_are_listed_read_and_written() -> None:
    config = StackConfig(NCP_EUI64)
    K = bt.NV3KeyId
    (count,) = call(config, 13, "getTokenCount")
    infos = [call(config, 14, "getTokenInfo", index=index) for index in range(count)]
    assert all(status == bt.sl_Status.OK for status, _ in infos)
    by_key = {info.nvm3Key: info for _, info in infos}
    assert by_key[K.NVM3KEY_STACK_RESTORED_EUI64].size == 8
    assert by_key[K.NVM3KEY_STACK_NONCE_COUNTER].isCnt
    assert call(config, 13, "getTokenInfo", index=count)[0] == bt.EmberStatus.INDEX_OUT_OF_RANGE
    # The NCP names the restored EUI64 by its creator code, zigbeed by its NVM3 key: one token
    assert call(config, 13, "getTokenData", token=K.CREATOR_STACK_RESTORED_EUI64, index=0) == (
        bt.EmberStatus.SUCCESS,
        b"\xff" * 8,
    )
    data = bt.LVBytes32(OTHER_EUI64.serialize())
    assert call(
        config, 13, "setTokenData", token=K.NVM3KEY_STACK_RESTORED_EUI64, index=0, token_data=data
    ) == (bt.EmberStatus.SUCCESS,)
    assert call(config, 14, "getTokenData", token=K.CREATOR_STACK_RESTORED_EUI64, index=0) == (
        bt.sl_Status.OK,
        OTHER_EUI64.serialize(),
    )
    assert call(
        config, 13, "setTokenData", token=K.NVM3KEY_STACK_RESTORED_EUI64, index=0, token_data=b"\x00"
    ) == (bt.EmberStatus.ERR_FATAL,)
    assert call(config, 13, "getTokenData", token=K.NVM3KEY_STACK_ZLL_DATA, index=0) == (
        bt.EmberStatus.ERR_FATAL,
        None,
    )
    config.reset()
    assert config.eui64 == OTHER_EUI64


def test_the_network_front_end_serves_its_own_tokens() -> None:
    config = StackConfig(NCP_EUI64)
    node_data = {"value": bytes(range(16))}

    def write(data: bytes) -> None:
        node_data["value"] = data

    config.provide_token(
        bt.NV3KeyId.CREATOR_STACK_NODE_DATA,
        16,
        lambda: node_data["value"],
        write,
        factory_reset=lambda: write(b"\xff" * 16),
    )
    (count,) = call(config, 13, "getTokenCount")
    keys = {call(config, 13, "getTokenInfo", index=index)[1].nvm3Key for index in range(count)}
    assert bt.NV3KeyId.NVM3KEY_STACK_NODE_DATA in keys
    node = bt.NV3KeyId.NVM3KEY_STACK_NODE_DATA
    assert call(config, 14, "getTokenData", token=node, index=0) == (bt.sl_Status.OK, bytes(range(16)))
    assert call(config, 13, "setTokenData", token=node, index=0, token_data=bt.LVBytes32(b"\x01" * 16)) == (
        bt.EmberStatus.SUCCESS,
    )
    assert node_data["value"] == b"\x01" * 16
    assert call(config, 13, "setTokenData", token=node, index=0, token_data=bt.LVBytes32(b"\x01")) == (
        bt.EmberStatus.ERR_FATAL,
    )
    assert "NVM3KEY_STACK_NODE_DATA/0" not in config.to_json()["nv3_tokens"]  # the network keeps it
    call(config, 13, "tokenFactoryReset", excludeOutgoingFC=False, excludeBootCounter=False)
    assert node_data["value"] == b"\xff" * 16


@pytest.mark.parametrize("keep_counters", [False, True])
def test_a_token_factory_reset_restores_the_defaults(keep_counters: bool) -> None:
    config = StackConfig(NCP_EUI64)
    config.set_token(bt.NV3KeyId.NVM3KEY_STACK_RESTORED_EUI64, OTHER_EUI64.serialize())
    config.nwk_frame_counter = 99
    assert (
        call(config, 13, "tokenFactoryReset", excludeOutgoingFC=keep_counters, excludeBootCounter=False) == ()
    )
    assert config.token(bt.NV3KeyId.CREATOR_STACK_RESTORED_EUI64) == b"\xff" * 8
    assert config.nwk_frame_counter == (99 if keep_counters else 0)


# -- counters, the custom-frame probe, endpoints ---------------------------------------------------


def test_counters_count_read_and_clear() -> None:
    config = StackConfig(NCP_EUI64)
    for _ in range(3):
        config.count("COUNTER_MAC_RX_BROADCAST")
    config.count("COUNTER_APS_DATA_TX_UNICAST_FAILED")
    (values,) = call(config, 14, "readCounters")
    assert len(values) == len(bt.EmberCounterType)
    counted = dict(zip(bt.EmberCounterType, values, strict=True))
    assert counted[bt.EmberCounterType.COUNTER_MAC_RX_BROADCAST] == 3
    assert counted[bt.EmberCounterType.COUNTER_APS_DATA_TX_UNICAST_FAILED] == 1
    assert sum(values) == 4
    assert call(config, 13, "readAndClearCounters") == (values,)
    assert sum(call(config, 13, "readCounters")[0]) == 0
    with pytest.raises(KeyError):
        config.count("COUNTER_NO_SUCH_THING")


def test_a_counter_stops_at_its_uint16_ceiling_and_a_reboot_clears_it() -> None:
    config = StackConfig(NCP_EUI64)
    for _ in range(0x10001):
        config.count("COUNTER_PHY_CCA_FAIL_COUNT")
    (values,) = call(config, 13, "readCounters")
    assert values[bt.EmberCounterType.COUNTER_PHY_CCA_FAIL_COUNT] == 0xFFFF
    config.reset()
    assert sum(call(config, 13, "readCounters")[0]) == 0


@pytest.mark.parametrize(
    ("version", "refused"), [(13, bt.EmberStatus.INVALID_CALL), (14, bt.sl_Status.INVALID_STATE)]
)
def test_a_custom_frame_is_refused_like_stock_firmware(version: int, refused: Any) -> None:
    assert call(StackConfig(NCP_EUI64), version, "customFrame", payload=b"\x00\x00\x00") == (refused, b"")


def test_endpoints_are_added_before_the_network_is_up() -> None:
    config = StackConfig(NCP_EUI64)
    request = {
        "endpoint": 1,
        "profileId": 0x0104,
        "deviceId": 0x0005,
        "deviceVersion": 0,
        "inputClusterCount": 2,
        "outputClusterCount": 1,
        "inputClusterList": [0x0000, 0x0006],
        "outputClusterList": [0x0019],
    }
    assert call(config, 13, "addEndpoint", **request) == (bt.EzspStatus.SUCCESS,)
    endpoint = config.endpoints[1]
    assert (endpoint.input_clusters, endpoint.output_clusters) == ((0x0000, 0x0006), (0x0019,))
    assert call(config, 13, "addEndpoint", **request) == (bt.EzspStatus.ERROR_INVALID_VALUE,)
    config.network_up = True
    assert call(config, 14, "addEndpoint", **{**request, "endpoint": 2}) == (bt.sl_Status.INVALID_PARAMETER,)
    config.reset()
    assert not config.endpoints


def test_the_multicast_table_is_sized_by_the_configuration_and_lost_on_reboot() -> None:
    config = StackConfig(NCP_EUI64)
    size = bt.EzspConfigId.CONFIG_MULTICAST_TABLE_SIZE
    assert call(config, 13, "setConfigurationValue", configId=size, value=4) == (bt.EzspStatus.SUCCESS,)
    entry = bt.EmberMulticastTableEntry(multicastId=0x1234, endpoint=1, networkIndex=0)
    assert call(config, 13, "setMulticastTableEntry", index=3, value=entry) == (bt.EmberStatus.SUCCESS,)
    assert call(config, 14, "getMulticastTableEntry", index=3) == (bt.sl_Status.OK, entry)
    assert call(config, 13, "setMulticastTableEntry", index=4, value=entry) == (
        bt.EmberStatus.INDEX_OUT_OF_RANGE,
    )
    assert config.multicast_groups(1) == {0x1234}
    config.reset()
    assert config.multicast_groups(1) == frozenset()
    assert call(config, 13, "getMulticastTableEntry", index=3)[1].endpoint == 0


# -- unmodified bellows over socket:// -------------------------------------------------------------


@pytest.fixture
async def stack() -> AsyncIterator[tuple[StackConfig, EzspNcp, EZSP]]:
    config = StackConfig(NCP_EUI64)
    ncp = EzspNcp()
    ncp.register(config.handlers(13))

    def reboot() -> None:
        ncp.reset()
        config.reset()

    async with ncp_listening(ncp, on_reset=reboot) as path:
        ezsp = await bellows_connected(path)
        try:
            yield config, ncp, ezsp
        finally:
            await ezsp.disconnect()


async def _reboot(ezsp: EZSP) -> None:
    """What bellows's application does after writing tokens: reset the NCP and start over."""
    ezsp.stop_ezsp()
    await asyncio.wait_for(ezsp.startup_reset(), TIMEOUT)


async def test_bellows_configures_the_stack_and_reads_the_board(
    stack: tuple[StackConfig, EzspNcp, EZSP],
) -> None:
    config, _ncp, ezsp = stack
    assert ezsp._xncp_features == FirmwareFeatures.NONE  # the custom-frame probe was refused
    await asyncio.wait_for(ezsp.write_config({"CONFIG_MAX_END_DEVICE_CHILDREN": 48}), TIMEOUT)
    # bellows's defaults where they differ from the firmware's, tables grown but never shrunk
    assert config.config_value("CONFIG_TC_REJOINS_USING_WELL_KNOWN_KEY_TIMEOUT_S") == 90
    assert config.config_value("CONFIG_MULTICAST_TABLE_SIZE") == 16
    assert config.config_value("CONFIG_ADDRESS_TABLE_SIZE") == 16
    assert config.config_value("CONFIG_KEY_TABLE_SIZE") == 12
    assert config.config_value("CONFIG_PAN_ID_CONFLICT_REPORT_THRESHOLD") == 2
    assert config.config_value("CONFIG_MAX_END_DEVICE_CHILDREN") == 48
    status, value = await ezsp.getValue(valueId=bt.EzspValueId.VALUE_FORCE_TX_AFTER_FAILED_CCA_ATTEMPTS)
    assert (status, value) == (bt.EzspStatus.SUCCESS, b"\x01")
    board = await asyncio.wait_for(ezsp.get_board_info(), TIMEOUT)
    assert board == (MANUFACTURER, BOARD_NAME, "7.4.4.0 build 0")
    assert await ezsp.getEui64() == [NCP_EUI64]
    # The endpoint bellows's application registers, in the shape it sends
    status = await ezsp.addEndpoint(
        endpoint=1,
        profileId=0x0104,
        deviceId=0x0005,
        deviceVersion=0,
        inputClusterCount=2,
        outputClusterCount=3,
        inputClusterList=[0x0000, 0x0006],
        outputClusterList=[0x0019, 0x0500, 0x0702],
    )
    assert status == [bt.EzspStatus.SUCCESS]
    endpoint = config.endpoints[1]
    assert (endpoint.input_clusters, endpoint.output_clusters) == ((0x0000, 0x0006), (0x0019, 0x0500, 0x0702))


async def test_bellows_finds_free_multicast_entries_and_subscribes_the_coordinator(
    stack: tuple[StackConfig, EzspNcp, EZSP],
) -> None:
    config, _ncp, ezsp = stack
    await asyncio.wait_for(ezsp.write_config({}), TIMEOUT)
    coordinator = SimpleNamespace(endpoints={0: None, 1: SimpleNamespace(member_of={0x0901: None})})
    multicast = Multicast(ezsp)
    await asyncio.wait_for(multicast.startup(coordinator), TIMEOUT)
    assert config.multicast_groups(1) == {0x0901}
    assert await multicast.subscribe(0x0902) == bt.sl_Status.OK
    assert config.multicast_groups(1) == {0x0901, 0x0902}


async def test_bellows_reads_and_clears_the_counters(stack: tuple[StackConfig, EzspNcp, EZSP]) -> None:
    config, _ncp, ezsp = stack
    config.count("COUNTER_MAC_TX_BROADCAST")
    config.count("COUNTER_MAC_TX_BROADCAST")
    counters = await asyncio.wait_for(ezsp.read_counters(), TIMEOUT)
    assert counters[bt.EmberCounterType.COUNTER_MAC_TX_BROADCAST] == 2
    assert len(counters) == len(bt.EmberCounterType)
    assert (await ezsp.read_and_clear_counters())[bt.EmberCounterType.COUNTER_MAC_TX_BROADCAST] == 2
    assert (await ezsp.read_counters())[bt.EmberCounterType.COUNTER_MAC_TX_BROADCAST] == 0


async def test_bellows_rewrites_the_eui64_through_nv3_and_it_holds_after_a_reset(
    stack: tuple[StackConfig, EzspNcp, EZSP],
) -> None:
    config, _ncp, ezsp = stack
    assert await ezsp.can_rewrite_custom_eui64()
    assert await ezsp.can_burn_userdata_custom_eui64()
    await asyncio.wait_for(ezsp.write_custom_eui64(OTHER_EUI64), TIMEOUT)
    assert config.token(bt.NV3KeyId.NVM3KEY_STACK_RESTORED_EUI64) == OTHER_EUI64.serialize()
    assert await ezsp.getEui64() == [NCP_EUI64]  # taken at the next boot
    await _reboot(ezsp)
    assert await ezsp.getEui64() == [OTHER_EUI64]
    await asyncio.wait_for(ezsp.reset_custom_eui64(), TIMEOUT)
    await _reboot(ezsp)
    assert await ezsp.getEui64() == [NCP_EUI64]
    assert config.to_json()["mfg_tokens"]["MFG_CUSTOM_EUI_64"] == "ff" * 8  # no flash was burnt


async def test_bellows_writes_the_update_id_and_the_frame_counters(
    stack: tuple[StackConfig, EzspNcp, EZSP],
) -> None:
    config, ncp, ezsp = stack
    # networkState belongs to the network front-end; a node that is on no network, for the test
    ncp._handlers["networkState"] = lambda _params: (bt.EmberNetworkStatus.NO_NETWORK,)
    await asyncio.wait_for(ezsp.write_nwk_update_id(7), TIMEOUT)
    token, _ = bt.NV3StackNetworkManagementToken.deserialize(
        config.token(bt.NV3KeyId.NVM3KEY_STACK_NETWORK_MANAGEMENT) or b""
    )
    assert token.update_id == 7
    await asyncio.wait_for(ezsp.write_nwk_frame_counter(0x00012345), TIMEOUT)
    await asyncio.wait_for(ezsp.write_aps_frame_counter(0x00000042), TIMEOUT)
    assert (config.nwk_frame_counter, config.aps_frame_counter) == (0x00012345, 0x42)


# -- unmodified bellows speaking EZSP 14, over an in-memory line ------------------------------------


async def test_bellows_speaking_ezsp_14_configures_reads_and_rewrites_the_ncp() -> None:
    config = StackConfig(NCP_EUI64)
    ncp = EzspNcp(14)
    ncp.register(config.handlers(14))
    async with ncp_listening(ncp) as path:
        ezsp = await bellows_connected(path)
        try:
            await _ezsp_14_round_trips(config, ezsp)
        finally:
            await ezsp.disconnect()


async def _ezsp_14_round_trips(config: StackConfig, ezsp: EZSP) -> None:
    assert ezsp.ezsp_version == 14
    assert await asyncio.wait_for(ezsp.get_xncp_features(), TIMEOUT) == FirmwareFeatures.NONE
    await asyncio.wait_for(ezsp.write_config({}), TIMEOUT)
    assert config.config_value("CONFIG_TC_REJOINS_USING_WELL_KNOWN_KEY_TIMEOUT_S") == 90
    board = await asyncio.wait_for(ezsp.get_board_info(), TIMEOUT)
    assert board == (MANUFACTURER, BOARD_NAME, "8.0.2.0 build 0")
    config.count("COUNTER_MAC_RX_UNICAST")
    assert (await ezsp.read_counters())[bt.EmberCounterType.COUNTER_MAC_RX_UNICAST] == 1
    await asyncio.wait_for(ezsp.write_custom_eui64(OTHER_EUI64), TIMEOUT)
    assert config.token(bt.NV3KeyId.NVM3KEY_STACK_RESTORED_EUI64) == OTHER_EUI64.serialize()
    await asyncio.wait_for(ezsp.write_nwk_update_id(3), TIMEOUT)
    token, _ = bt.NV3StackNetworkManagementToken.deserialize(
        config.token(bt.NV3KeyId.NVM3KEY_STACK_NETWORK_MANAGEMENT) or b""
    )
    assert token.update_id == 3
