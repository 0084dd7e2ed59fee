"""`prepare_data_dir` on folders that are not the daemon's alone, and on planted links (no daemon)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from z2m_qbkg40lm.private_files import is_shared_folder, prepare_data_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_folder_of_its_own_is_made_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    prepare_data_dir(data_dir, data_dir / "configuration.yaml")
    assert mode(data_dir) == 0o700


def test_a_sticky_shared_folder_keeps_its_mode(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: other programs put their files here too
    with caplog.at_level(logging.WARNING):
        prepare_data_dir(shared, shared / "configuration.yaml")
    assert mode(shared) == 0o1777
    assert "give the daemon a folder of its own" in caplog.text
    assert mode(shared / "zigbee.db") == 0o600, "the daemon's own files are private all the same"


@pytest.mark.parametrize("folder", ["/", "/etc", "/var/lib", "/tmp", "/home"])
def test_system_folders_are_shared(folder: str) -> None:
    assert is_shared_folder(Path(folder))


def test_the_home_folder_is_shared() -> None:
    assert is_shared_folder(Path.home())


def test_a_planted_link_is_not_followed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    target = tmp_path / "somebody_elses_file"
    target.write_text("not the daemon's")
    target.chmod(0o644)
    (data_dir / "secrets.yaml").symlink_to(target)
    prepare_data_dir(data_dir, data_dir / "configuration.yaml")
    assert mode(target) == 0o644
