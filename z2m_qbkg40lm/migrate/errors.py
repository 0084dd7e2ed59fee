"""The one error of a migration: what is wrong, in which file. Nothing has been written when it is raised."""

from __future__ import annotations

from pathlib import Path


class MigrationError(Exception):
    """Input that cannot be imported or exported; the message names the file and the problem."""

    def __init__(self, path: Path | None, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path is not None else problem)
        self.path = path
        self.problem = problem
