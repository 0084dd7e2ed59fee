"""EmberZNet (bellows): noticing a coordinator that rebooted on its own.

An EFR32 that reboots (brown-out, firmware watchdog) says so on the serial line with an
unprompted ASH RSTACK carrying its reset reason, and forgets what the host set up (endpoints,
configuration, the running network until `networkInit`). bellows takes any RSTACK it did not ask
for as a failed NCP and reports it as a lost connection (`NcpFailure` with the reset code), the
same way as a serial line that broke. A reset reason (`RESET_*`) means the chip is there and
starting afresh: the daemon re-initialises the radio in-process instead of giving the adapter up.
ASH errors (`ERROR_*`: the link gave up on acknowledgements) stay a lost adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bellows.ash import NcpFailure


def watch_resets(app: Any, on_reset: Callable[[str], None]) -> Callable[[], None]:
    """Nothing to watch: bellows reports an unprompted reset as a lost connection (`lost_means_reset`)."""
    return lambda: None


def failure_means_reset(exc: BaseException) -> bool:
    """No send failure tells a reset apart on EmberZNet: the RSTACK does, first."""
    return False


def lost_means_reset(exc: BaseException | None) -> str | None:
    """The reason, when a lost connection is a coordinator that rebooted on its own; else None."""
    if not isinstance(exc, NcpFailure):
        return None
    code = getattr(exc, "code", None)
    name = getattr(code, "name", "")
    if not name.startswith("RESET_"):
        return None
    return f"the coordinator rebooted on its own (ASH RSTACK, reason {name})"
