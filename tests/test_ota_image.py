"""OTA upgrade files without a radio: header checks, the builder, the sources, what is offered to
whom, and the zigpy provider and configuration built from them."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import struct
from pathlib import Path
from typing import Any

import pytest
import zigpy.ota
import zigpy.ota.image
from zigpy.zcl.clusters.general import QueryNextImageCommand

from z2m_qbkg40lm.bridge.ota import update_payload
from z2m_qbkg40lm.config import OtaConfig, parse_config, resolve_network
from z2m_qbkg40lm.ota.image import (
    BASE_HEADER_LENGTH,
    OtaImageError,
    build_image,
    parse_header,
    validate_image,
)
from z2m_qbkg40lm.ota.matching import DeviceQuery, why_not_offered
from z2m_qbkg40lm.ota.provider import LocalFirmwareProvider, zigpy_ota_config
from z2m_qbkg40lm.ota.sources import FirmwareSources
from z2m_qbkg40lm.zigbee.adapters import application_class, zigpy_config

LUMI = 0x115F
QBKG40LM_IMAGE = 0x1888
B2NC01_IMAGE = 0x1908
HEADER_STRING = "ROUTERX-----JN5180--ENCRYPTED000"
REAL_SIZE = 289_744
"""The size of the published version 29 file (qbkg40lm-zigbee.md §10)."""
IEEE = "0x54ef441000abcdef"


def lumi_image(
    version: int = 29, *, size: int = 4096, image_type: int = QBKG40LM_IMAGE, **extra: Any
) -> bytes:
    """A QBKG40LM-shaped file of exactly `size` bytes (header, one upgrade image element)."""
    payload = random.Random(version).randbytes(size - BASE_HEADER_LENGTH - 6 - _optional(extra))
    return build_image(
        manufacturer_code=LUMI,
        image_type=image_type,
        file_version=version,
        payload=payload,
        header_string=HEADER_STRING,
        **extra,
    )


def _optional(extra: dict[str, Any]) -> int:
    return 4 * ("hardware_versions" in extra) + 8 * ("destination" in extra)


# --- the builder and the checks ------------------------------------------------------------------


def test_a_built_image_of_the_real_size_passes_and_says_what_it_is() -> None:
    data = lumi_image(29, size=REAL_SIZE)
    assert len(data) == REAL_SIZE
    header = validate_image(data)
    assert (header.manufacturer_code, header.image_type, header.file_version) == (LUMI, QBKG40LM_IMAGE, 29)
    assert header.header_string == HEADER_STRING
    assert header.total_size == REAL_SIZE
    assert header.header_length == BASE_HEADER_LENGTH
    assert header.stack_version == 2
    assert header.describe() == "manufacturer 0x115F, image type 0x1888, version 29"


def test_zigpy_reads_built_images_the_same_way() -> None:
    data = lumi_image(24, hardware_versions=(1, 3), destination=IEEE, with_integrity_code=True)
    image, rest = zigpy.ota.image.parse_ota_image(data)
    assert rest == b""
    header = image.header
    assert (header.manufacturer_id, header.image_type, header.file_version) == (LUMI, QBKG40LM_IMAGE, 24)
    assert (header.minimum_hardware_version, header.maximum_hardware_version) == (1, 3)
    assert str(header.upgrade_file_destination) == "54:ef:44:10:00:ab:cd:ef"
    assert image.serialize() == data
    ours = validate_image(data)
    assert ours.destination == IEEE
    assert (ours.min_hardware_version, ours.max_hardware_version) == (1, 3)
    assert ours.header_length == BASE_HEADER_LENGTH + 12


def test_optional_header_fields_change_the_header_length() -> None:
    data = build_image(
        manufacturer_code=LUMI, image_type=1, file_version=1, payload=b"x", security_credential_version=2
    )
    header = validate_image(data)
    assert header.header_length == BASE_HEADER_LENGTH + 1
    assert header.security_credential_version == 2


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    changed = bytearray(data)
    struct.pack_into(fmt, changed, offset, value)
    return bytes(changed)


CORRUPTIONS = [
    pytest.param(lambda d: b"PK\x03\x04" + d[4:], "not a Zigbee OTA file", id="zip-file"),
    pytest.param(lambda d: d[:40], "shorter than an OTA header", id="cut-in-header"),
    pytest.param(
        lambda d: _patched(d, 4, "<H", 0x0200), "unsupported OTA header version", id="header-version"
    ),
    pytest.param(lambda d: _patched(d, 6, "<H", 60), "does not match its field control", id="header-length"),
    pytest.param(lambda d: _patched(d, 8, "<H", 0x0008), "unknown bits", id="field-control"),
    pytest.param(lambda d: d[:-100], "truncated: the header says", id="truncated"),
    pytest.param(lambda d: d + b"\x00" * 10, "has extra bytes", id="trailing-bytes"),
    pytest.param(
        lambda d: _patched(
            _patched(d, 52, "<I", len(d) + 4) + b"\x00" * 4, BASE_HEADER_LENGTH + 2, "<I", len(d)
        ),
        "claims",
        id="element-overflow",
    ),
    pytest.param(
        lambda d: _patched(d, BASE_HEADER_LENGTH, "<H", 0x0004), "no upgrade image", id="no-upgrade"
    ),
]


@pytest.mark.parametrize(("corrupt", "reason"), CORRUPTIONS)
def test_a_damaged_file_is_refused_with_the_reason(corrupt: Any, reason: str) -> None:
    good = lumi_image()
    validate_image(good)
    with pytest.raises(OtaImageError, match=reason):
        validate_image(corrupt(good))


def test_the_image_integrity_code_is_checked() -> None:
    good = lumi_image(with_integrity_code=True)
    validate_image(good)
    flipped = bytearray(good)
    flipped[1000] ^= 0x01
    with pytest.raises(OtaImageError, match="integrity code does not match"):
        validate_image(bytes(flipped))
    not_last = build_image(
        manufacturer_code=LUMI,
        image_type=QBKG40LM_IMAGE,
        file_version=3,
        payload=b"firmware",
        extra_elements=[(0x0003, bytes(16)), (0x0004, b"picture")],
    )
    with pytest.raises(OtaImageError, match="not the last"):
        validate_image(not_last)


def test_an_impossible_hardware_range_is_refused() -> None:
    with pytest.raises(OtaImageError, match="above the maximum"):
        parse_header(lumi_image(hardware_versions=(5, 2)))


def test_hardware_ranges_are_inclusive() -> None:
    header = validate_image(lumi_image(hardware_versions=(1, 2)))
    assert [header.fits_hardware(v) for v in (0, 1, 2, 3, None)] == [False, True, True, False, False]
    assert validate_image(lumi_image()).fits_hardware(None)


def test_the_builder_refuses_a_header_string_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="at most 32"):
        build_image(manufacturer_code=1, image_type=1, file_version=1, payload=b"", header_string="x" * 33)


# --- the sources ---------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_the_folder_offers_checked_files_and_says_why_others_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ota"
    _write(folder / "QBKG40LM_0029.ota", lumi_image(29))
    _write(folder / "b2nc01.zigbee", lumi_image(30, image_type=B2NC01_IMAGE))
    _write(folder / "broken.ota", lumi_image(30)[:-1])
    _write(folder / "README.txt", b"not firmware")
    _write(folder / ".hidden.ota", b"editor swap file")
    catalogue = FirmwareSources(image_folder=folder).scan()
    assert sorted(f.name for f in catalogue.files) == ["QBKG40LM_0029.ota", "b2nc01.zigbee"]
    assert [(Path(r.where).name, r.reason) for r in catalogue.refused] == [
        ("broken.ota", "truncated: the header says 4096 bytes, the file has 4095")
    ]
    good = next(f for f in catalogue.files if f.name == "QBKG40LM_0029.ota")
    assert good.sha512 == hashlib.sha512((folder / "QBKG40LM_0029.ota").read_bytes()).hexdigest()


def test_a_missing_folder_is_a_refusal_not_a_crash(tmp_path: Path) -> None:
    catalogue = FirmwareSources(image_folder=tmp_path / "nowhere").scan()
    assert catalogue.files == ()
    assert "cannot read the image folder" in catalogue.refused[0].reason


def test_a_replaced_file_is_checked_again(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.ota", lumi_image(29))
    sources = FirmwareSources(image_folder=tmp_path)
    assert [f.header.file_version for f in sources.scan().files] == [29]
    _write(path, lumi_image(30, size=5000))
    os.utime(path, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    assert [f.header.file_version for f in sources.scan().files] == [30]


def _entry(data: bytes, url: str, **extra: Any) -> dict[str, Any]:
    header = validate_image(data)
    entry = {
        "fileName": Path(url).name,
        "fileVersion": header.file_version,
        "fileSize": len(data),
        "url": url,
        "imageType": header.image_type,
        "manufacturerCode": header.manufacturer_code,
        "sha512": hashlib.sha512(data).hexdigest(),
        "otaHeaderString": HEADER_STRING,
        "modelId": "lumi.switch.b1nc01",
    }
    entry.update(extra)
    return entry


def test_a_zigbee2mqtt_index_with_local_paths(tmp_path: Path) -> None:
    index = tmp_path / "ota" / "index.json"
    v29 = _write(tmp_path / "ota" / "images" / "v29.ota", lumi_image(29))
    # An absolute path is fine inside the index's folder (elsewhere: test_ota_confinement.py).
    absolute = _write(tmp_path / "ota" / "v30.ota", lumi_image(30))
    entries = [
        _entry(
            v29.read_bytes(), "images/v29.ota", minFileVersion=22, maxFileVersion=28, releaseNotes="Fixes"
        ),
        _entry(absolute.read_bytes(), str(absolute), hardwareVersionMin=1, hardwareVersionMax=1),
    ]
    index.write_text(json.dumps(entries), encoding="utf-8")
    catalogue = FirmwareSources(index_file=index).scan()
    assert catalogue.refused == ()
    first, second = catalogue.files
    assert first.path == v29 and first.name == "images/v29.ota"
    assert (first.min_file_version, first.max_file_version, first.release_notes) == (22, 28, "Fixes")
    assert first.model_ids == ("lumi.switch.b1nc01",)
    assert second.path == absolute
    assert (second.min_hardware_version, second.max_hardware_version) == (1, 1)


def test_an_index_url_is_never_downloaded_but_found_next_to_the_index(tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    data = lumi_image(29)
    official = "https://github.com/Koenkk/zigbee-OTA/raw/master/images/Xiaomi/lumi.switch.b1nc01_0029.ota"
    missing = "https://example.org/firmware/other_0030.ota"
    index.write_text(json.dumps([_entry(data, official), _entry(lumi_image(30), missing)]), encoding="utf-8")
    _write(tmp_path / "lumi.switch.b1nc01_0029.ota", data)
    catalogue = FirmwareSources(index_file=index).scan()
    assert [f.header.file_version for f in catalogue.files] == [29]
    (refused,) = catalogue.refused
    assert "never downloads" in refused.reason and "other_0030.ota" in refused.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param({"sha512": "00" * 64}, "SHA-512 differs", id="checksum"),
        pytest.param(
            {"fileVersion": 30}, "the index says fileVersion 30 but the file's header says 29", id="version"
        ),
        pytest.param({"imageType": B2NC01_IMAGE}, "imageType 6408", id="image-type"),
        pytest.param({"manufacturerCode": 4476}, "manufacturerCode 4476", id="manufacturer"),
        pytest.param({"fileSize": 1}, "fileSize 1 but the file has 4096", id="size"),
        pytest.param({"otaHeaderString": "OTHER"}, "header string", id="header-string"),
        pytest.param({"url": "gone.ota", "fileName": "gone.ota"}, "cannot read", id="missing-file"),
        pytest.param({"url": None, "fileName": None}, "no url", id="no-location"),
        pytest.param({"fileVersion": "29"}, "must be a number", id="text-version"),
        pytest.param({"url": "ftp://host/x.ota"}, "only local paths", id="ftp"),
    ],
)
def test_an_index_entry_that_does_not_match_its_file_is_refused(
    tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    data = lumi_image(29)
    _write(tmp_path / "v29.ota", data)
    entry = {k: v for k, v in {**_entry(data, "v29.ota"), **change}.items() if v is not None}
    index = tmp_path / "index.json"
    index.write_text(json.dumps([entry]), encoding="utf-8")
    catalogue = FirmwareSources(index_file=index).scan()
    assert catalogue.files == ()
    (refused,) = catalogue.refused
    assert reason in refused.reason
    assert refused.where == f"{index} entry 1"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "must be a JSON list"),
        ("[42]", "not a JSON object"),
        ("[" * 10_000 + "]" * 10_000, "not valid JSON (nested deeper than 32 levels)"),
    ],
)
def test_a_broken_index_is_refused_with_the_reason(tmp_path: Path, text: str, reason: str) -> None:
    index = tmp_path / "index.json"
    index.write_text(text, encoding="utf-8")
    catalogue = FirmwareSources(index_file=index).scan()
    assert catalogue.files == ()
    assert reason in catalogue.refused[0].reason


# --- what is offered to whom ----------------------------------------------------------------------


def _file(tmp_path: Path, data: bytes, **index_fields: Any) -> Any:
    _write(tmp_path / "f.ota", data)
    index = tmp_path / "index.json"
    index.write_text(json.dumps([_entry(data, "f.ota", **index_fields)]), encoding="utf-8")
    (file,) = FirmwareSources(index_file=index).scan().files
    return file


QUERY = DeviceQuery(
    ieee=IEEE,
    manufacturer_code=LUMI,
    image_type=QBKG40LM_IMAGE,
    file_version=24,
    hardware_version=1,
    model="lumi.switch.b1nc01",
    manufacturer="LUMI",
)


@pytest.mark.parametrize(
    ("data", "fields", "reason"),
    [
        pytest.param(lumi_image(29), {}, None, id="offered"),
        pytest.param(
            lumi_image(29, image_type=B2NC01_IMAGE), {}, "image type 0x1908 (another device)", id="type"
        ),
        pytest.param(lumi_image(24), {}, "not newer than the installed 24", id="same-version"),
        pytest.param(
            lumi_image(29), {"modelId": "lumi.switch.b2nc01"}, "lumi.switch.b2nc01 only", id="model"
        ),
        pytest.param(
            lumi_image(29), {"minFileVersion": 25}, "only from versions 25 or later", id="min-version"
        ),
        pytest.param(lumi_image(29, hardware_versions=(2, 3)), {}, "hardware version 2 to 3", id="hardware"),
        pytest.param(
            lumi_image(29, destination="0x54ef440000000001"), {}, "for the device", id="device-file"
        ),
        pytest.param(lumi_image(29, destination=IEEE), {}, None, id="own-device-file"),
    ],
)
def test_why_a_file_is_not_offered(
    tmp_path: Path, data: bytes, fields: dict[str, Any], reason: str | None
) -> None:
    found = why_not_offered(_file(tmp_path, data, **fields), QUERY)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_another_manufacturers_file_is_not_offered(tmp_path: Path) -> None:
    data = build_image(manufacturer_code=4476, image_type=QBKG40LM_IMAGE, file_version=99, payload=b"ikea")
    _write(tmp_path / "ikea.ota", data)
    (file,) = FirmwareSources(image_folder=tmp_path).scan().files
    assert "manufacturer 0x117C" in (why_not_offered(file, QUERY) or "")


# --- the zigpy provider and configuration ---------------------------------------------------------


async def test_the_provider_offers_checked_files_only_and_reports_refusals_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(tmp_path / "good.ota", lumi_image(29))
    _write(tmp_path / "bad.ota", b"\x1e\xf1\xee\x0b" + bytes(10))
    provider = LocalFirmwareProvider(image_folder=str(tmp_path))
    with caplog.at_level(logging.INFO, logger="z2m_qbkg40lm.ota.provider"):
        first = await provider.load_index()
        second = await provider.load_index()
    assert [m.file_version for m in first] == [29] == [m.file_version for m in second]
    meta = first[0]
    assert (meta.manufacturer_id, meta.image_type, meta.file_size) == (LUMI, QBKG40LM_IMAGE, 4096)
    assert meta.checksum == "sha512:" + hashlib.sha512((tmp_path / "good.ota").read_bytes()).hexdigest()
    # zigpy reads the file again when it serves it, and checks size and checksum.
    firmware = await meta.fetch()
    assert firmware.serialize() == (tmp_path / "good.ota").read_bytes()
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING
    assert "bad.ota" in refusals[0].getMessage()


async def test_a_file_replaced_after_its_check_is_not_served(tmp_path: Path) -> None:
    path = _write(tmp_path / "good.ota", lumi_image(29))
    (meta,) = await LocalFirmwareProvider(image_folder=str(tmp_path)).load_index()
    _write(path, lumi_image(31))
    with pytest.raises(ValueError, match="checksum"):
        await meta.fetch()


def _config(tmp_path: Path, ota: dict[str, Any] | None = None) -> Any:
    raw: dict[str, Any] = {"mqtt": {"server": "mqtt://localhost"}, "serial": {"adapter": "virtual"}}
    if ota is not None:
        raw["ota"] = ota
    return parse_config(raw, tmp_path / "configuration.yaml")


def test_zigpy_gets_our_provider_and_none_of_its_downloading_ones(tmp_path: Path) -> None:
    loaded = _config(
        tmp_path, {"image_folder": "firmware", "zigbee_ota_override_index_location": "/srv/i.json"}
    )
    config = loaded.config
    assert loaded.warnings == ()
    app_class = application_class("virtual")
    validated = app_class.SCHEMA(zigpy_config(config, tmp_path, resolve_network(config.advanced, tmp_path)))
    assert validated["ota"]["enabled"] is True
    assert validated["ota"]["broadcast_enabled"] is False
    manager = zigpy.ota.OTA(validated["ota"], None)
    (provider,) = manager._providers
    assert isinstance(provider, LocalFirmwareProvider)
    assert provider.sources.image_folder == tmp_path / "firmware"
    assert provider.sources.index_file == Path("/srv/i.json")


def test_without_an_ota_section_zigpy_still_has_only_our_empty_provider(tmp_path: Path) -> None:
    ota = zigpy_ota_config(OtaConfig(), tmp_path)
    validated = application_class("virtual").SCHEMA(
        {"device": {"path": "virtual"}, "ota": ota, "virtual": {"switches": 0}}
    )
    (provider,) = zigpy.ota.OTA(validated["ota"], None)._providers
    assert isinstance(provider, LocalFirmwareProvider)
    assert provider.sources.image_folder is None and provider.sources.index_file is None


@pytest.mark.parametrize(
    ("ota", "problem"),
    [
        ({"zigbee_ota_override_index_location": "https://example.org/index.json"}, "never downloads"),
        ({"image_folder": " "}, "must not be empty"),
        ({"update_check_interval": 0}, "greater than 0"),
        ({"image_block_request_timeout": -1}, "greater than 0"),
        ({"ikea_ota_use_test_url": True}, "unknown key"),
    ],
)
def test_bad_ota_settings_are_named(tmp_path: Path, ota: dict[str, Any], problem: str) -> None:
    from z2m_qbkg40lm.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, ota)
    assert any(line.startswith("ota.") and problem in line for line in caught.value.problems), (
        caught.value.problems
    )


def test_zigbee2mqtt_ota_keys_load() -> None:
    settings = OtaConfig.model_validate(
        {
            "update_check_interval": 60,
            "disable_automatic_update_check": True,
            "image_block_response_delay": 250,
            "default_maximum_data_size": 50,
            "image_block_request_timeout": 150000,
        }
    )
    assert settings.update_check_interval == 60 and settings.disable_automatic_update_check


# --- the `update` state object ---------------------------------------------------------------------


def test_the_update_state_has_zigbee2mqtts_shape() -> None:
    assert update_payload("available", 24, 29, "v29.ota", None) == {
        "installed_version": 24,
        "latest_release_notes": None,
        "latest_source": "v29.ota",
        "latest_version": 29,
        "state": "available",
    }
    updating = update_payload("updating", 24, 29, progress=12.3456, remaining=41.6)
    assert (updating["progress"], updating["remaining"]) == (12.35, 42)


def test_a_query_command_matches_our_query_type() -> None:
    # The transfer module reads these fields from zigpy's command.
    command = QueryNextImageCommand(
        field_control=QueryNextImageCommand.FieldControl.HardwareVersion,
        manufacturer_code=LUMI,
        image_type=QBKG40LM_IMAGE,
        current_file_version=24,
        hardware_version=1,
    )
    from z2m_qbkg40lm.ota.transfer import device_query

    class _Device:
        ieee = "54:ef:44:10:00:ab:cd:ef"
        model = "lumi.switch.b1nc01"
        manufacturer = "LUMI"

    assert device_query(_Device(), command) == QUERY


# --- Home Assistant's update entity ----------------------------------------------------------------


def _ha_configs(firmware_updates: bool, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    from z2m_qbkg40lm.bridge.ha_entities import DiscoveryTarget, device_configs
    from z2m_qbkg40lm.devices.qbkg40lm import QBKG40LM

    target = DiscoveryTarget(
        ieee=IEEE,
        friendly_name="hall_switch",
        definition=QBKG40LM,
        base_topic="zigbee2mqtt",
        discovery_prefix="homeassistant",
        coordinator_ieee="0x00124b0012345678",
        availability=False,
        overrides=overrides or {},
        firmware_updates=firmware_updates,
    )
    return device_configs(target)


UPDATE_TOPIC = f"homeassistant/update/{IEEE}/update/config"


def test_the_update_entity_installs_through_the_bridge_request() -> None:
    config = _ha_configs(True)[UPDATE_TOPIC]
    assert config["command_topic"] == "zigbee2mqtt/bridge/request/device/ota_update/update"
    assert json.loads(config["payload_install"]) == {"id": IEEE}
    assert config["payload_install"] == f'{{"id": "{IEEE}"}}'  # Zigbee2MQTT's spacing
    assert config["entity_picture"].endswith("/zigbee2mqtt/raw/master/images/logo.png")
    assert (config["device_class"], config["entity_category"], config["name"]) == ("firmware", "config", None)
    assert config["state_topic"] == "zigbee2mqtt/hall_switch"
    assert config["default_entity_id"] == "update.hall_switch"
    assert config["unique_id"] == f"{IEEE}_update_zigbee2mqtt"
    # Without the OTA requests served, no entity that could never work; `update: null` drops it too.
    assert UPDATE_TOPIC not in _ha_configs(False)
    assert UPDATE_TOPIC not in _ha_configs(True, {"update": None})


def test_the_update_template_renders_versions_and_progress() -> None:
    jinja2 = pytest.importorskip("jinja2.sandbox", reason="jinja2 (Home Assistant's template engine)")
    environment = jinja2.ImmutableSandboxedEnvironment()
    environment.filters["to_json"] = json.dumps
    template = environment.from_string(_ha_configs(True)[UPDATE_TOPIC]["value_template"])

    def render(state: dict[str, Any]) -> Any:
        text = template.render(value_json=state)
        return json.loads(text) if text else None

    assert render({"state": "ON"}) is None  # no check ran yet: nothing for Home Assistant
    running = {"state": "updating", "installed_version": 24, "latest_version": 29, "progress": 12.5}
    assert render({"update": running}) == {
        "in_progress": True,
        "installed_version": 24,
        "latest_version": 29,
        "update_percentage": 12.5,
    }
    idle = render({"update": {"state": "idle", "installed_version": 29, "latest_version": 29}})
    assert idle == {
        "in_progress": False,
        "installed_version": 29,
        "latest_version": 29,
        "update_percentage": None,
    }
