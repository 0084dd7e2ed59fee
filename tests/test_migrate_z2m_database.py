"""zigbee-herdsman's database.db: one device per line, read and written as herdsman does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.migrate_samples import BULB_IEEE, COORDINATOR_IEEE, SWITCH_IEEE, database_entries, database_text
from z2m_qbkg40lm.migrate.errors import MigrationError
from z2m_qbkg40lm.migrate.z2m_database import format_database, read_z2m_database


def _write(folder: Path, text: str) -> Path:
    path = folder / "database.db"
    path.write_text(text, encoding="utf-8")
    return path


def test_devices_with_their_endpoints_and_interview_data(tmp_path: Path) -> None:
    database = read_z2m_database(_write(tmp_path, database_text()))

    assert database.coordinator is not None and database.coordinator.ieee == COORDINATOR_IEEE
    assert [device.ieee for device in database.end_devices] == [SWITCH_IEEE, BULB_IEEE]
    assert database.groups == 1
    switch = database.end_devices[0]
    assert (switch.type, switch.nwk, switch.manufacturer_code) == ("Router", 0x1A2B, 4447)
    assert (switch.model_id, switch.manufacturer, switch.power_source) == ("lumi.switch.b1nc01", "LUMI", 1)
    assert (switch.date_code, switch.sw_build_id, switch.app_version) == ("06-15-2022", "0.0.0_0029", 29)
    assert switch.interviewed and switch.last_seen == 1764950000000
    endpoint = switch.endpoints[0]
    assert (endpoint.id, endpoint.profile_id, endpoint.device_id) == (1, 260, 256)
    assert endpoint.input_clusters == (0, 2, 3, 4, 5, 6, 9, 64704)
    assert endpoint.output_clusters == (10, 25)
    assert [ep.id for ep in switch.endpoints] == [1, 41, 242]


def test_interview_completed_of_older_herdsman_counts_as_interviewed(tmp_path: Path) -> None:
    entries = database_entries()
    del entries[1]["interviewState"]
    entries[2]["interviewState"] = "FAILED"

    database = read_z2m_database(_write(tmp_path, database_text(entries)))

    assert [device.interviewed for device in database.end_devices] == [True, False]


def test_a_line_that_is_not_json_is_an_error_naming_the_line(tmp_path: Path) -> None:
    lines = database_text().split("\n")
    lines[2] = lines[2][:40]

    with pytest.raises(MigrationError, match=r"database\.db: line 3 is not JSON"):
        read_z2m_database(_write(tmp_path, "\n".join(lines)))


def test_a_device_without_an_address_is_an_error(tmp_path: Path) -> None:
    entries = database_entries()
    del entries[1]["ieeeAddr"]

    with pytest.raises(MigrationError, match="line 2: ieeeAddr is missing"):
        read_z2m_database(_write(tmp_path, database_text(entries)))


def test_a_device_listed_twice_is_an_error(tmp_path: Path) -> None:
    entries = database_entries()
    entries[2]["ieeeAddr"] = SWITCH_IEEE

    with pytest.raises(MigrationError, match=f"line 3: device {SWITCH_IEEE} appears twice"):
        read_z2m_database(_write(tmp_path, database_text(entries)))


def test_a_cluster_list_with_text_is_an_error(tmp_path: Path) -> None:
    entries = database_entries()
    entries[1]["endpoints"]["1"]["inClusterList"] = ["genBasic"]

    with pytest.raises(MigrationError, match="line 2: endpoint 1 inClusterList 'genBasic' is not a number"):
        read_z2m_database(_write(tmp_path, database_text(entries)))


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match=r"database\.db: missing"):
        read_z2m_database(tmp_path / "database.db")


def test_written_as_herdsman_writes_it_and_read_back_the_same(tmp_path: Path) -> None:
    devices = read_z2m_database(_write(tmp_path, database_text())).devices

    text = format_database(devices)

    assert not text.endswith("\n")
    lines = text.split("\n")
    assert [json.loads(line)["id"] for line in lines] == [1, 2, 3]
    assert ": " not in lines[1] and ", " not in lines[1]  # compact, as JSON.stringify
    switch = json.loads(lines[1])
    assert switch["interviewCompleted"] is True and switch["interviewState"] == "SUCCESSFUL"
    assert switch["powerSource"] == "Mains (single phase)"
    assert switch["endpoints"]["1"]["inClusterList"] == [0, 2, 3, 4, 5, 6, 9, 64704]
    assert read_z2m_database(_write(tmp_path, text)).devices == devices
