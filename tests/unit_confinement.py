"""Run a command under the system-call confinement a systemd unit file asks for, without systemd.

`python -m tests.unit_confinement UNIT_FILE COMMAND [ARGS...]` reads the unit's SystemCallFilter=
lines (groups expanded by `systemd-analyze syscall-filter`, in order: the first line is the allow
list, `~` lines take calls away, later plain lines add them back), SystemCallErrorNumber=,
RestrictAddressFamilies= and MemoryDenyWriteExecute=, loads the equivalent seccomp filter through
libseccomp (socket()/socketpair() allowed only for the listed families) and the kernel's own
write-xor-execute switch (PR_SET_MDWE, Linux 6.3+), then execs the command, which keeps all of it
across fork and exec. systemd's MemoryDenyWriteExecute= is a seccomp filter with the same effect
on mmap(); it also refuses mprotect() adding PROT_EXEC, which the kernel's switch allows only for
memory that was never writable.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import sys
from functools import cache
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


@cache
def expand(item: str) -> frozenset[str]:
    """A system call name, or the calls of a @group (nested groups included)."""
    if not item.startswith("@"):
        return frozenset({item})
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", item], capture_output=True, text=True, check=True
    ).stdout
    calls: set[str] = set()
    for line in listing.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            calls |= expand(entry)
    return frozenset(calls)


def unit_settings(unit: Path) -> dict[str, list[str]]:
    """Every `Key=value` of the unit, in order (repeated keys keep every value)."""
    settings: dict[str, list[str]] = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        key, equals, value = line.partition("=")
        if equals and not line.startswith(("#", ";", "[")):
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def allowed_calls(settings: dict[str, list[str]]) -> frozenset[str]:
    """The system calls the unit's SystemCallFilter= lines allow."""
    filters = settings.get("SystemCallFilter", [])
    if not filters or filters[0].startswith("~"):
        raise ValueError("expected SystemCallFilter= to start with an allow list")
    allowed: set[str] = set()
    for value in filters:
        deny = value.startswith("~")
        for item in value.removeprefix("~").split():
            if deny:
                allowed -= expand(item)
            else:
                allowed |= expand(item)
    return frozenset(allowed)


def seccomp_available() -> bool:
    """True when libseccomp can be loaded."""
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return False
    return True


def mdwe_supported() -> bool:
    """True when the kernel has PR_SET_MDWE (Linux 6.3+)."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0)


def confine(unit: Path) -> int:
    """Load the unit's confinement into this process; returns how many calls are allowed."""
    settings = unit_settings(unit)
    refusal = getattr(errno, settings.get("SystemCallErrorNumber", ["EPERM"])[-1])
    families = [getattr(socket, name) for name in settings.get("RestrictAddressFamilies", [""])[-1].split()]
    seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = (ctypes.c_uint32,)
    seccomp.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    seccomp.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    )
    seccomp.seccomp_load.argtypes = (ctypes.c_void_p,)
    context = seccomp.seccomp_init(0x00050000 | refusal)  # SCMP_ACT_ERRNO(refusal)
    count = 0
    for name in sorted(allowed_calls(settings)):
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number < 0:  # not a call of this architecture (e.g. the 32-bit setuid32)
            continue
        if name in ("socket", "socketpair") and families:
            for family in families:
                match = (_ArgCmp * 1)(_ArgCmp(0, SCMP_CMP_EQ, family, 0))
                if seccomp.seccomp_rule_add_array(context, SCMP_ACT_ALLOW, number, 1, match) != 0:
                    raise OSError(f"seccomp: cannot allow {name} for family {family}")
        elif seccomp.seccomp_rule_add_array(context, SCMP_ACT_ALLOW, number, 0, None) != 0:
            raise OSError(f"seccomp: cannot allow {name}")
        count += 1
    if settings.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_MDWE")
    if seccomp.seccomp_load(context) != 0:
        raise OSError("seccomp_load failed")
    return count


def main() -> None:
    unit, *command = sys.argv[1:]
    count = confine(Path(unit))
    print(f"confined like {Path(unit).name}: {count} system calls allowed", file=sys.stderr, flush=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
