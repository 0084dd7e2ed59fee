"""The data directory is private: 0700, every file in it 0600, whatever the umask.

zigbee.db holds the network key (zigpy's network backups), secrets.yaml the generated keys, and
the other files the network's layout. A file made by an earlier version (or by a library under a
permissive umask) is tightened at start; new files are made private by the process umask the
`run` command sets and by the modes the writers ask for.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from z2m_qbkg40lm.atomic_file import NEW_FILE_MODE, remove_stale_temporaries
from z2m_qbkg40lm.bridge.settings_guard import STORE_FILE
from z2m_qbkg40lm.bridge.state import CORRUPT_STATE_FILE, STATE_FILE
from z2m_qbkg40lm.bridge.timed_off import TIMED_OFF_FILE
from z2m_qbkg40lm.config import SECRETS_FILE
from z2m_qbkg40lm.zigbee.adapters import DATABASE_FILE, VIRTUAL_STATE_FILE

_LOGGER = logging.getLogger(__name__)

DIRECTORY_MODE = 0o700

# Folders other programs rely on being open: the data directory defaults to the configuration's
# folder, and `--config /etc/configuration.yaml` must not make /etc private.
_SHARED_FOLDERS = frozenset(
    Path(folder)
    for folder in (
        "/", "/etc", "/opt", "/srv", "/usr", "/usr/local", "/var", "/var/lib", "/var/local",
        "/var/opt", "/var/tmp", "/tmp", "/run", "/home", "/root", "/mnt", "/media",
    )
)  # fmt: skip

# SQLite's companions of the database hold pages of it, so the key as well.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
DATA_FILES = (
    DATABASE_FILE,
    *(DATABASE_FILE + suffix for suffix in _SQLITE_COMPANIONS),
    SECRETS_FILE,
    STATE_FILE,
    CORRUPT_STATE_FILE,
    STORE_FILE,
    TIMED_OFF_FILE,
    VIRTUAL_STATE_FILE,
)


def prepare_data_dir(data_dir: Path, config_path: Path) -> None:
    """Make the data directory private, tighten its files, create the database private, and
    remove the temporary files an interrupted write left there and beside the configuration."""
    data_dir.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    if is_shared_folder(data_dir):
        _LOGGER.warning(
            "The data directory %s is a folder other programs use: its mode is left as it is (the "
            "daemon's files in it are still private); give the daemon a folder of its own with --data-dir",
            data_dir,
        )
    else:
        make_private(data_dir, DIRECTORY_MODE)
    for name in DATA_FILES:
        path = data_dir / name
        # A link is not followed: whoever planted it would have us change the mode of its target.
        if path.exists() and not path.is_symlink():
            make_private(path, NEW_FILE_MODE)
    # SQLite gives its -wal and -shm files the database's mode: a database made here 0600 keeps
    # them private even under a library's own umask.
    database = data_dir / DATABASE_FILE
    if not database.exists():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE))
    for folder in dict.fromkeys((data_dir.resolve(), config_path.resolve().parent)):
        remove_stale_temporaries(folder)


def is_shared_folder(folder: Path) -> bool:
    """A system folder, a home folder or a sticky folder (/tmp-like): not ours to make private."""
    resolved = folder.resolve()
    if resolved in _SHARED_FOLDERS or resolved == Path.home().resolve():
        return True
    return bool(resolved.stat().st_mode & stat.S_ISVTX)


def make_private(path: Path, mode: int) -> None:
    """Take group and other permissions away from `path` (a WARNING when that is not allowed)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & ~mode:
            os.chmod(path, current & mode)
            _LOGGER.info("Made %s private (mode %03o, was %03o)", path, current & mode, current)
    except OSError as exc:
        _LOGGER.warning("Cannot make %s private (%s): other users may read it", path, exc.strerror)
