"""Run the daemon with tracemalloc on; SIGUSR1 writes its top allocation sites to a file.

    python bench/traced_daemon.py OUT_FILE run --config FILE --data-dir DIR

Used by bench_sweep.py (`--tracemalloc K`): tracing slows the daemon down several times, so its
figures come from a daemon of their own and never from the timed ones.
"""

from __future__ import annotations

import runpy
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

TOP = 10


def short(filename: str) -> str:
    """A path from its package on (`zigpy/zcl/__init__.py`), or as it is."""
    for marker in ("site-packages/", "/lib/python3."):
        if marker in filename:
            rest = filename.split(marker, 1)[1]
            return rest if marker == "site-packages/" else "stdlib:" + rest.split("/", 1)[-1]
    if "/z2m_qbkg40lm/" in filename:
        return "z2m_qbkg40lm/" + filename.split("/z2m_qbkg40lm/", 1)[1]
    return filename


def dump(out: Path) -> None:
    """Write the traced total and the top files and lines by allocated size."""
    snapshot = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced: {current / 2**20:.1f} MB now, {peak / 2**20:.1f} MB peak"]
    for key in ("filename", "lineno"):
        lines.append(f"top {TOP} by {key}:")
        for stat in snapshot.statistics(key)[:TOP]:
            frame = stat.traceback[0]
            where = short(frame.filename) + ("" if key == "filename" else f":{frame.lineno}")
            lines.append(f"  {stat.size / 2**20:7.2f} MB {stat.count:8d} blocks  {where}")
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out)


def main() -> None:
    """Start tracing, install the handler, run the daemon's command line."""
    out = Path(sys.argv[1])

    def on_signal(signum: int, frame: FrameType | None) -> None:
        dump(out)

    tracemalloc.start(1)
    signal.signal(signal.SIGUSR1, on_signal)
    sys.argv = ["z2m_qbkg40lm", *sys.argv[2:]]
    runpy.run_module("z2m_qbkg40lm", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
