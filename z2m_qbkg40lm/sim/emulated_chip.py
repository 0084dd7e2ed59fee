"""What every emulated coordinator chip offers the emulator around it, whatever its protocol.

The control API (`sim.control`) and the `emulate` command drive a chip through this protocol:
the shared world of switches, the faults a user can inject, resets, the serial line. Each
chip's front-end (`sim.znp`, `sim.ezsp`) implements it in its own protocol's terms: a failed
delivery is a Z-Stack `Status` on one, an EmberZNet status on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from z2m_qbkg40lm.sim.world import SimulatedWorld


@dataclass
class Faults:
    """Faults injected on demand."""

    muted: bool = False
    """The chip has hung: it answers nothing and sends nothing."""
    confirm_delay: float = 0.0
    """Seconds every delivery confirmation (AF.DataConfirm, messageSentHandler) is held back."""
    confirm_status: Any = None
    """Every unicast's confirmation carries this failure status of the chip's (and the frame is
    lost); None: deliveries succeed."""


class EmulatedChip(Protocol):
    """An emulated coordinator chip, as its emulator and control API see it."""

    world: SimulatedWorld
    faults: Faults

    @property
    def network_up(self) -> bool:
        """True while the coordinator runs its network."""

    def save(self) -> None:
        """Write the state file now."""

    def close(self) -> None:
        """Stop timers and save; the serial line is the caller's."""

    def drop_link(self, *, fault: bool = True) -> bool:
        """Cut the serial line (as a fault, or on shutdown); False when no host is connected."""

    def spontaneous_reset(self) -> None:
        """Fault: the chip reboots on its own (a watchdog reset) and tells its host."""

    def failure_status(self, status: str | int) -> Any:
        """The chip's delivery failure status by name or number; ValueError (with examples) if none."""

    def spoil_frames(
        self, *, corrupt_to_host: int = 0, lose_to_host: int = 0, lose_from_host: int = 0
    ) -> None:
        """Fault: the serial line corrupts or loses the next frames of the chip's framing;
        ValueError when the chip's framing has no retransmission to show."""
