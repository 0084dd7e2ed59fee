"""Putting a set of new files into a data directory all at once, never over existing ones unless told.

The files are first made in a private staging folder inside the target (same file system, so each
one is then renamed into place); a replaced file is kept beside it as `<name>.before-<what>-<time>`.
Anything that fails before the renames leaves the target as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from z2m_qbkg40lm.migrate.errors import MigrationError

DIRECTORY_MODE = 0o700
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database: they go wherever the database goes."""


@dataclass(frozen=True)
class Replaced:
    """An existing file moved aside, and where to."""

    original: Path
    kept_as: Path


def occupied(target: Path, names: Iterable[str]) -> list[Path]:
    """The files among `names` (and an SQLite database's companions) that already exist in `target`."""
    found = []
    for name in names:
        for candidate in (name, *(name + suffix for suffix in SQLITE_COMPANIONS if name.endswith(".db"))):
            path = target / candidate
            if path.exists() or path.is_symlink():
                found.append(path)
    return found


def refuse_occupied(target: Path, names: Iterable[str], force: bool) -> list[Path]:
    """The files to move aside; MigrationError when there are any and `force` is not given."""
    existing = occupied(target, names)
    if existing and not force:
        listed = ", ".join(path.name for path in existing)
        raise MigrationError(
            target, f"already holds {listed}: nothing was written (--force replaces them, keeping copies)"
        )
    return existing


@contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A private folder inside `target` (made 0700 when new); removed afterwards, whatever happens.
    A target made here is removed again when nothing was put into it."""
    created = not target.exists()
    try:
        target.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".z2m-migrate-", dir=target))
    except OSError as exc:
        raise MigrationError(
            target, f"cannot write there ({exc.strerror or exc}): nothing was written"
        ) from None
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if created and not any(target.iterdir()):
            target.rmdir()


def kept_name(path: Path, label: str, stamp: str) -> Path:
    """Where an existing file is kept: `<name>.before-<label>-<stamp>`; an SQLite companion keeps its
    suffix after that (`zigbee.db.before-import-<stamp>-wal`), so SQLite still finds it beside the
    kept database."""
    for suffix in SQLITE_COMPANIONS:
        base = path.name.removesuffix(suffix)
        if base != path.name and base.endswith(".db"):
            return path.with_name(f"{base}.before-{label}-{stamp}{suffix}")
    return path.with_name(f"{path.name}.before-{label}-{stamp}")


def move_into_place(staged: Path, target: Path, existing: list[Path], label: str) -> list[Replaced]:
    """Move the existing files aside (`kept_name`), then every staged file in."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    replaced = []
    try:
        for path in existing:
            kept = kept_name(path, label, stamp)
            os.replace(path, kept)
            replaced.append(Replaced(original=path, kept_as=kept))
        for entry in sorted(staged.iterdir()):
            os.replace(entry, target / entry.name)
    except OSError as exc:
        moved = ", ".join(f"{each.original.name} -> {each.kept_as.name}" for each in replaced) or "none"
        raise MigrationError(
            target, f"cannot move the files into place ({exc.strerror or exc}); files moved aside: {moved}"
        ) from None
    return replaced
