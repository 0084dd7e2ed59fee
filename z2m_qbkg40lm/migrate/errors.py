"""The one error of a migration: what is wrong, in which file. Nothing has been written when it is raised."""

from __future__ import annotations

from pathlib import Path


class MigrationError(Exception):
    """Input that cannot be imported or exported; the message names the file and the problem."""

    def __init__(self, path: Path | None, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path is not None else problem)
        self.path = path
        self.problem = problem


def read_text_file(path: Path) -> str:
    """The UTF-8 text of one of the files a migration reads; MigrationError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MigrationError(path, "missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MigrationError(path, f"cannot read ({getattr(exc, 'strerror', None) or exc})") from None
