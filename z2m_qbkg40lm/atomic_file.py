"""Files written so that a crash leaves either the old or the new content, never half of it."""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

NEW_FILE_MODE = 0o600
"""Every file this daemon creates may hold a secret (network key, broker password) or its traces."""

TEMP_SUFFIX = ".atomic-tmp"
# `.<target name>.<mkstemp's 8 random characters>.atomic-tmp`: the suffix is this writer's alone,
# so a start may delete what a killed process left without touching an editor's `.name.swp`.
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")


def write_atomically(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write `text` to a temporary file beside `path`, flush it to disk, then rename it over `path`.

    `mode` sets the permissions; by default the existing file's are kept (0o600 for a new file).
    An existing file's owner and group are kept too, where the process may set them.
    """
    existing = path.stat() if path.exists() else None
    if mode is None:
        mode = stat.S_IMODE(existing.st_mode) if existing is not None else NEW_FILE_MODE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        if existing is not None:
            keep_owner(fd, existing, path)
        # After the chown: changing the owner clears the set-id bits.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def keep_owner(target: int | Path, existing: os.stat_result, shown_as: Path) -> None:
    """Give `target` (an open file or a path) the owner and group `existing` had, where the process
    may (root may; others only to groups of their own): a file rewritten by a daemon running as
    root must not change hands."""
    created = os.stat(target)
    if (created.st_uid, created.st_gid) == (existing.st_uid, existing.st_gid):
        return
    try:
        os.chown(target, existing.st_uid, existing.st_gid)
    except PermissionError:
        _LOGGER.warning(
            "%s now belongs to uid %d gid %d (was uid %d gid %d): this process may not keep its owner",
            shown_as,
            created.st_uid,
            created.st_gid,
            existing.st_uid,
            existing.st_gid,
        )


def is_temporary(name: str) -> bool:
    """True for the name of a temporary file `write_atomically` makes (and a crash may leave)."""
    return _TEMP_NAME.match(name) is not None


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files a killed process left in `folder`; returns what was removed.

    Call it only before anything in this process writes there: a write in progress has one too.
    """
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        _LOGGER.warning("Cannot look for stale temporary files in %s (%s)", folder, exc.strerror)
        return removed
    for entry in entries:
        if not is_temporary(entry.name) or entry.is_symlink() or not entry.is_file():
            continue
        try:
            entry.unlink()
        except OSError as exc:
            _LOGGER.warning("Cannot remove the stale temporary file %s (%s)", entry, exc.strerror)
            continue
        _LOGGER.info("Removed %s, left by an interrupted write", entry)
        removed.append(entry)
    return removed
