"""OTA sources never open a file outside their two folders, and no refusal tells anything about one.

Each probe is tried twice, with its target present and absent: the refusal must be the same text,
so that whoever writes the index learns nothing (existence, size, first bytes) about the machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from z2m_qbkg40lm.ota.image import build_image, validate_image
from z2m_qbkg40lm.ota.provider import LocalFirmwareProvider
from z2m_qbkg40lm.ota.sources import OUTSIDE_THE_FOLDERS, Catalogue, FirmwareSources

SECRET = b"mqtt_password: hunter2-0123456789\n"
"""The content of the files a probe aims at: no refusal may show any of it, nor its size."""


def _image(version: int = 29) -> bytes:
    return build_image(
        manufacturer_code=0x115F,
        image_type=0x1888,
        file_version=version,
        payload=bytes(range(256)) * 8,
        header_string="ROUTERX-----JN5180--ENCRYPTED000",
    )


def _entry(url: str, data: bytes | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"url": url}
    if data is not None:
        header = validate_image(data)
        entry.update(fileVersion=header.file_version, sha512=hashlib.sha512(data).hexdigest())
    return entry


class Layout:
    """`base/ota/index.json` and `base/images/` configured; `base/private/` is out of bounds."""

    def __init__(self, base: Path) -> None:
        self.index = base / "ota" / "index.json"
        self.folder = base / "images"
        self.private = base / "private"
        for folder in (self.index.parent, self.folder, self.private):
            folder.mkdir()
        self.secret = self.private / "secrets.yaml"
        self.secret.write_bytes(SECRET)
        self.missing = self.private / "missing.yaml"

    def scan_index(self, *entries: dict[str, Any]) -> Catalogue:
        self.index.write_text(json.dumps(list(entries)), encoding="utf-8")
        return FirmwareSources(image_folder=self.folder, index_file=self.index).scan()


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


def _assert_tells_nothing(reason: str) -> None:
    assert "hunter2" not in reason and "mqtt_password" not in reason
    assert str(len(SECRET)) not in reason, "the size of the target"
    first_word = int.from_bytes(SECRET[:4], "little")
    assert f"{first_word:08X}" not in reason.upper(), "the first bytes of the target"
    for word in ("No such file", "Permission denied", "exist", "cannot read"):
        assert word not in reason, reason


def _probe_urls(layout: Layout, target: Path) -> dict[str, str]:
    relative = os.path.relpath(target, layout.index.parent)
    return {
        "absolute": str(target),
        "file URL": target.as_uri(),
        "file URL, host form": f"file://localhost{target}",
        "dot-dot": relative,
        "dot-dot inside then out": f"sub/../{relative}",
        "home": "~/" + target.name,
    }


@pytest.mark.parametrize(
    "probe",
    ["absolute", "file URL", "file URL, host form", "dot-dot", "dot-dot inside then out", "home"],
)
def test_an_index_url_out_of_the_folders_is_refused_the_same_whether_it_exists(
    layout: Layout, probe: str
) -> None:
    present = _probe_urls(layout, layout.secret)[probe]
    absent = _probe_urls(layout, layout.missing)[probe]
    catalogue = layout.scan_index(_entry(present), _entry(absent))
    assert catalogue.files == ()
    reasons = [refused.reason for refused in catalogue.refused]
    assert len(reasons) == 2
    if probe == "home":
        # `~` is not expanded: a name in the index's folder, which is not there.
        assert all("cannot read (No such file or directory)" in r for r in reasons), reasons
        return
    assert reasons == [OUTSIDE_THE_FOLDERS, OUTSIDE_THE_FOLDERS]
    for reason in reasons:
        _assert_tells_nothing(reason)


def test_etc_shadow_and_device_files_are_refused_unopened(layout: Layout) -> None:
    catalogue = layout.scan_index(
        _entry("/etc/shadow"), _entry("file:///etc/shadow"), _entry("/dev/zero"), _entry("/dev/nonexistent")
    )
    assert catalogue.files == ()
    assert [r.reason for r in catalogue.refused] == [OUTSIDE_THE_FOLDERS] * 4


def test_a_link_out_of_the_folders_is_refused_the_same_whether_its_target_exists(layout: Layout) -> None:
    (layout.index.parent / "present.ota").symlink_to(layout.secret)
    (layout.index.parent / "dangling.ota").symlink_to(layout.missing)
    (layout.index.parent / "zero.ota").symlink_to("/dev/zero")
    (layout.index.parent / "linked_dir").symlink_to(layout.private)
    catalogue = layout.scan_index(
        _entry("present.ota"), _entry("dangling.ota"), _entry("zero.ota"), _entry("linked_dir/secrets.yaml")
    )
    assert catalogue.files == ()
    assert [r.reason for r in catalogue.refused] == [OUTSIDE_THE_FOLDERS] * 4


def test_links_out_of_the_image_folder_are_refused_the_same_whether_their_target_exists(
    layout: Layout,
) -> None:
    (layout.folder / "present.ota").symlink_to(layout.secret)
    (layout.folder / "dangling.ota").symlink_to(layout.missing)
    (layout.folder / "zero.ota").symlink_to("/dev/zero")
    catalogue = FirmwareSources(image_folder=layout.folder).scan()
    assert catalogue.files == ()
    refused = {Path(r.where).name: r.reason for r in catalogue.refused}
    assert refused == dict.fromkeys(["dangling.ota", "present.ota", "zero.ota"], OUTSIDE_THE_FOLDERS)


def test_a_fifo_in_the_folders_is_refused_unopened(layout: Layout) -> None:
    # Opening a fifo for reading blocks until a writer comes: a scan that opened it would hang.
    os.mkfifo(layout.folder / "pipe.ota")
    os.mkfifo(layout.index.parent / "pipe.ota")

    async def scan() -> Catalogue:
        sources = FirmwareSources(image_folder=layout.folder, index_file=layout.index)
        layout.index.write_text(json.dumps([_entry("pipe.ota")]), encoding="utf-8")
        return await asyncio.wait_for(asyncio.to_thread(sources.scan), 10)

    catalogue = asyncio.run(scan())
    assert catalogue.files == ()
    assert len(catalogue.refused) == 2
    assert all(r.reason.endswith("not a regular file, not opened") for r in catalogue.refused)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_in_the_folder_is_refused_unopened(layout: Layout) -> None:
    os.mknod(layout.folder / "null.ota", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    catalogue = FirmwareSources(image_folder=layout.folder).scan()
    assert [r.reason for r in catalogue.refused] == ["not a regular file, not opened"]


def test_an_index_that_is_a_fifo_is_refused_unopened(layout: Layout) -> None:
    fifo = layout.index.parent / "fifo.json"
    os.mkfifo(fifo)
    catalogue = FirmwareSources(index_file=fifo).scan()
    assert catalogue.refused[0].reason == "cannot read the index (not a regular file, not opened)"


def test_a_file_in_the_folder_that_is_no_firmware_is_refused_without_its_content(layout: Layout) -> None:
    (layout.folder / "secrets.ota").write_bytes(SECRET * 20)
    (layout.index.parent / "secrets.yaml").write_bytes(SECRET)
    catalogue = layout.scan_index(_entry("secrets.yaml"))
    reasons = [r.reason for r in catalogue.refused]
    assert len(reasons) == 2
    for reason in reasons:
        assert "not a Zigbee OTA file (it does not start with the magic number 0x0BEEF11E)" in reason
        _assert_tells_nothing(reason)


def test_files_in_the_folders_are_still_served(layout: Layout) -> None:
    in_index_folder = _image(29)
    (layout.index.parent / "images").mkdir()
    (layout.index.parent / "images" / "v29.ota").write_bytes(in_index_folder)
    in_image_folder = _image(30)
    (layout.folder / "v30.ota").write_bytes(in_image_folder)
    (layout.folder / "linked.ota").symlink_to(layout.folder / "v30.ota")
    catalogue = layout.scan_index(
        _entry("images/v29.ota", in_index_folder),
        _entry(str(layout.folder / "v30.ota"), in_image_folder),
        _entry("images/./v29.ota", in_index_folder),
    )
    assert catalogue.refused == ()
    assert [(f.name, f.header.file_version) for f in catalogue.files] == [
        ("linked.ota", 30),
        ("v30.ota", 30),
        ("images/v29.ota", 29),
        (str(layout.folder / "v30.ota"), 30),
        ("images/./v29.ota", 29),
    ]


def test_configured_folders_may_be_given_with_dot_dot(layout: Layout) -> None:
    data = _image(29)
    (layout.folder / "v29.ota").write_bytes(data)
    (layout.index.parent / "v29.ota").write_bytes(data)
    detour = layout.private / ".."
    layout.index.write_text(json.dumps([_entry("v29.ota", data)]), encoding="utf-8")
    catalogue = FirmwareSources(
        image_folder=detour / layout.folder.name, index_file=detour / "ota" / "index.json"
    ).scan()
    assert catalogue.refused == ()
    assert [f.name for f in catalogue.files] == ["v29.ota", "v29.ota"]


async def test_the_provider_logs_the_refusal_and_serves_nothing_outside(
    layout: Layout, caplog: pytest.LogCaptureFixture
) -> None:
    layout.index.write_text(json.dumps([_entry(str(layout.secret))]), encoding="utf-8")
    provider = LocalFirmwareProvider(index_file=str(layout.index))
    with caplog.at_level(logging.WARNING, logger="z2m_qbkg40lm.ota.provider"):
        assert await provider.load_index() == []
    (record,) = caplog.records
    assert record.getMessage() == (
        f"Firmware file {layout.index} entry 1 refused, never offered: {OUTSIDE_THE_FOLDERS}"
    )
