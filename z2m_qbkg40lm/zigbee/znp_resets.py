"""Z-Stack (zigpy-znp): noticing a coordinator that rebooted on its own.

A CC2652 that reboots (brown-out, firmware watchdog) announces it with SYS.ResetInd and forgets the
host's AF endpoint registrations; zigpy-znp ignores that callback, so frames from the devices stop
reaching the host and every send fails with INVALID_PARAMETER (the source endpoint is unknown).
"""

# zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zigpy.exceptions
import zigpy_znp.commands as c
import zigpy_znp.types as t


def _znp(app: Any) -> Any:
    """zigpy-znp's ZNP object of a running application.

    The one place that reaches into zigpy-znp's internals: the library offers no public hook for
    unsolicited callbacks, but its ZNP object (`app._znp`, set by `connect()`) has a documented
    listener API (`callback_for_response`, `remove_listener`) that the library uses itself.
    """
    znp = getattr(app, "_znp", None)
    if znp is None:
        raise RuntimeError("zigpy-znp's application is not connected")
    return znp


def watch_resets(app: Any, on_reset: Callable[[str], None]) -> Callable[[], None]:
    """Call `on_reset(reason)` on every SYS.ResetInd the running coordinator sends.

    Install it only once the application has started: zigpy-znp's own start-up resets the chip
    and waits for the same indication.
    """
    znp = _znp(app)

    def reset_indicated(message: Any) -> None:
        reason = getattr(message.Reason, "name", str(message.Reason))
        on_reset(f"the coordinator rebooted on its own (SYS.ResetInd, reason {reason})")

    listener = znp.callback_for_response(c.SYS.ResetInd.Callback(partial=True), reset_indicated)

    def stop() -> None:
        # A ZNP object that was closed has dropped its listeners already.
        znp.remove_listener(listener)

    return stop


def lost_means_reset(exc: BaseException | None) -> str | None:
    """zigpy-znp tells resets by SYS.ResetInd (`watch_resets`): a lost connection is a lost adapter."""
    return None


def failure_means_reset(exc: BaseException) -> bool:
    """AF.DataRequest refused with INVALID_PARAMETER: Z-Stack's answer to a source endpoint it does
    not know, which after a successful start means the chip lost its registrations in a reboot.
    The frame was refused before it went on air, so sending it again after a re-init is safe."""
    return isinstance(exc, zigpy.exceptions.DeliveryError) and exc.status == t.Status.INVALID_PARAMETER
