"""The one error of a migration (what is wrong, in which file; nothing has been written when it is
raised), and the readers of the files a migration reads, which raise it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise MigrationError(path, f"line {line} is not UTF-8 text") from None
    except OSError as exc:
        raise MigrationError(path, f"cannot read ({exc.strerror or exc})") from None


def read_json_file(path: Path) -> Any:
    """The JSON document in one of the files a migration reads; MigrationError when it cannot be
    read or is not JSON."""
    text = read_text_file(path)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MigrationError(path, f"not JSON ({exc})") from None
