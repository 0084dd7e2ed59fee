"""Atomic writes: private new files, the owner kept, and what a killed writer left removed at start."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from z2m_qbkg40lm.atomic_file import (
    TEMP_SUFFIX,
    is_temporary,
    remove_stale_temporaries,
    write_atomically,
)
from z2m_qbkg40lm.bridge.config_writer import SetValue, backup_path, save_edits

OTHER_UID, OTHER_GID = 4321, 8765


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_file_is_private_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "state.json"
    write_atomically(path, "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_rewrite_keeps_the_mode(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "configuration.yaml"
    path.write_text("a: 1\n")
    path.chmod(0o640)
    write_atomically(path, "a: 2\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_text() == "a: 2\n"


def test_the_temporary_name_is_the_writers_own() -> None:
    assert is_temporary(f".configuration.yaml.k3j_9x0a{TEMP_SUFFIX}")
    assert is_temporary(f".settings_guard.json.abcdefgh{TEMP_SUFFIX}")
    for other in (
        ".configuration.yaml.swp",  # vim
        ".configuration.yaml.k3j_9x0a",  # no suffix: not ours
        f"configuration.yaml.k3j_9x0a{TEMP_SUFFIX}",  # no leading dot
        f".configuration.yaml.short{TEMP_SUFFIX}",
        "configuration.yaml",
    ):
        assert not is_temporary(other), other


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path: Path) -> None:
    stale = [
        tmp_path / f".configuration.yaml.k3j_9x0a{TEMP_SUFFIX}",
        tmp_path / f".settings_guard.json.abcdefgh{TEMP_SUFFIX}",
    ]
    kept = [
        tmp_path / ".configuration.yaml.swp",
        tmp_path / "configuration.yaml",
        tmp_path / ".configuration.yaml.k3j_9x0a",
    ]
    for path in stale + kept:
        path.write_text("x")
    folder = tmp_path / f".folder.abcdefgh{TEMP_SUFFIX}"  # only files go
    folder.mkdir()
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted([*kept, folder])


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file to another user")
def test_a_rewrite_keeps_the_owner_and_group(tmp_path: Path) -> None:
    path = tmp_path / "configuration.yaml"
    path.write_text("advanced:\n  log_level: info\n")
    path.chmod(0o640)
    os.chown(path, OTHER_UID, OTHER_GID)
    save_edits(path, [SetValue(("advanced", "log_level"), "debug")])
    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (OTHER_UID, OTHER_GID, 0o640)
    assert "debug" in path.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file to another user")
def test_a_full_rewrite_gives_the_backup_the_owner_too(tmp_path: Path) -> None:
    path = tmp_path / "configuration.yaml"
    path.write_text("advanced: {channel: 15}\n")  # flow style: the line editor falls back
    path.chmod(0o600)
    os.chown(path, OTHER_UID, OTHER_GID)
    result = save_edits(path, [SetValue(("advanced", "log_level"), "debug")])
    assert not result.preserved
    for written in (path, backup_path(path)):
        info = written.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (OTHER_UID, OTHER_GID, 0o600)
