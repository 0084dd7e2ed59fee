"""The simulated world around an emulated coordinator: the switches, the air, the network's rules.

Every coordinator emulator (Z-Stack today, EmberZNet beside it) is a serial-protocol front-end
over one `SimulatedWorld`. The world knows nothing of MT or EZSP; it keeps what is true whatever
chip the coordinator is:

- the simulated switches (`SimulatedSwitch`, the firmware model the virtual adapter runs too),
  which network each has joined and which wait in pairing mode;
- permit join: which nodes admit joining devices and until when; switches in pairing mode join
  one after another once joining opens, through the coordinator or a switch that permits it;
- the air: a frame to a switch is handled by its firmware and its answers come back; a switch
  that is silent does not acknowledge (MAC no-ACK), an address no switch on the network has has
  no route; a broadcast or group frame reaches every switch on the network (of the group);
- the switches' timers, and the link each switch uses for the frames it sends on its own.

The coordinator front-end (`Coordinator`) turns joins, leaves and frames into its chip's
callbacks, and decides what its host sees: registrations, confirm statuses, faults.

Facts from the Zigbee PRO specification as far as a one-hop network of routers needs them:
joining only through a node that permits it (and for as long as it does; a Mgmt_Permit_Joining_req
heard by a router opens it too), a Device_annce broadcast after a join, a unicast that is
acknowledged at the MAC layer or not. The timings (MAC retries, the spacing of joins) are the
emulator's choices, named below.
"""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import zigpy.types as t

from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.ota_client import Timer, TimerSet
from z2m_qbkg40lm.sim.switch import SimulatedSwitch, random_nwk

LOGGER = logging.getLogger(__name__)

COORDINATOR_NWK: Final = 0x0000
DEFAULT_LINKQUALITY: Final = 160
NO_ACK_DELAY: Final = 0.05
"""Seconds a coordinator spends on MAC retries before it reports that a switch did not acknowledge."""
MGMT_PERMIT_JOINING_REQ: Final = 0x0036
JOIN_SPACING: Final = 0.1
"""Seconds between switches in pairing mode joining one after another."""


@dataclass(frozen=True)
class NetworkCredentials:
    """What a switch needs, beyond the extended PAN id, to talk on a network: frames carry the PAN
    id and are encrypted with the network key, so a coordinator running the same extended PAN id
    with another key (or PAN id) hears nothing from the switch, nor the switch from it."""

    pan_id: int
    network_key: bytes

    def to_json(self) -> dict[str, Any]:
        """For a state file (which holds the network key already, with the owner's permissions only)."""
        return {"pan_id": self.pan_id, "network_key": self.network_key.hex()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NetworkCredentials:
        """The `to_json` form back."""
        return cls(int(data["pan_id"]), bytes.fromhex(data["network_key"]))


def _known_credentials(pan_id: int, network_key: bytes | None) -> NetworkCredentials | None:
    """The credentials a chip runs with; None when its key is not set (all zeros: not known)."""
    if network_key is None or not any(network_key):
        return None
    return NetworkCredentials(pan_id, bytes(network_key))


@dataclass
class Node:
    """A simulated switch and its relation to the coordinator."""

    switch: SimulatedSwitch
    network: t.EUI64 | None = None
    """Extended PAN id of the network the switch joined; None while it is not on one."""
    pairing: bool = False
    """In pairing mode: joins as soon as the coordinator permits joining."""
    credentials: NetworkCredentials | None = None
    """PAN id and key of the network it joined, when the chip it joined through told the world
    (None: not known, as in a state file written before they were kept; the extended PAN id decides)."""

    @property
    def ieee_text(self) -> str:
        """`0x54ef44…`, as Zigbee2MQTT writes IEEE addresses."""
        return "0x" + str(self.switch.ieee).replace(":", "")


class Coordinator(Protocol):
    """What the world tells the emulated coordinator chip."""

    @property
    def ieee(self) -> t.EUI64:
        """The coordinator's IEEE address."""

    def device_joined(self, node: Node, parent: int) -> None:
        """A switch joined through `parent` (trust centre indication)."""

    def device_left(self, node: Node) -> None:
        """A switch on the running network left it."""

    def frame_from_air(self, src: int, frame: ApsFrame) -> None:
        """A frame from the switch with NWK address `src` reached the coordinator."""

    def state_changed(self, *, membership: bool = False) -> None:
        """Something worth saving changed: a switch's state, or (`membership`) who is on the network,
        which a state file must not lose."""


class Reach(enum.Enum):
    """Whether a unicast gets to its destination."""

    DELIVERED = "delivered"
    NO_ROUTE = "no route"
    """No device on the network has the address."""
    NO_ACK = "no acknowledgement"
    """The device is there but silent: the MAC retries go unanswered."""


@dataclass(frozen=True)
class Route:
    """Where a unicast to an address goes."""

    node: Node | None
    reach: Reach


class _NodeLink:
    """A switch's link to the world: its own frames reach the coordinator, its timers are the world's."""

    def __init__(self, world: SimulatedWorld, node: Node) -> None:
        self._world = world
        self._node = node

    def send(self, frames: list[ApsFrame]) -> None:
        self._world.emit(self._node, frames)
        self._world.coordinator.state_changed()  # the switch's state may have changed too (a new firmware)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self._world.switch_timers.call_later(delay, callback)


class SimulatedWorld:
    """The switches around one coordinator and the air between them."""

    def __init__(
        self,
        coordinator: Coordinator,
        *,
        linkquality: int = DEFAULT_LINKQUALITY,
        rng: random.Random | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.linkquality = linkquality
        self.rng = rng or random.Random()
        self.nodes: dict[t.EUI64, Node] = {}
        self.running: t.EUI64 | None = None
        """Extended PAN id of the network the coordinator runs; None while it runs none."""
        self.running_credentials: NetworkCredentials | None = None
        """PAN id and key of the network the coordinator runs (both set by `network_up`); None: not
        known, the extended PAN id alone decides."""
        self.switch_timers = TimerSet()
        self._handles: set[asyncio.TimerHandle] = set()
        self._permit_until: dict[int, float] = {}
        self._by_nwk: dict[int, Node] = {}

    # --- the switches ----------------------------------------------------------------------------

    def load(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Switches from a state file (`records()`'s form); their timers start now if an event loop
        runs, else with `attach_switches()` (when a host connects)."""
        for record in records:
            switch = SimulatedSwitch.from_dict(record)
            network = record.get("network")
            credentials = record.get("credentials")
            node = Node(
                switch,
                None if network is None else t.EUI64.convert(network),
                bool(record.get("pairing", False)),
                None if credentials is None else NetworkCredentials.from_json(credentials),
            )
            self.nodes[switch.ieee] = node
            switch.joined = node.network is not None  # the coordinator's record of the network decides
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # set up before the loop runs: the switches' timers start with a host
            return
        self.attach_switches()

    def records(self) -> list[dict[str, Any]]:
        """Every switch with its network membership, for a state file."""
        return [
            {
                **node.switch.to_dict(),
                "network": None if node.network is None else str(node.network),
                "pairing": node.pairing,
                **({} if node.credentials is None else {"credentials": node.credentials.to_json()}),
            }
            for node in self.nodes.values()
        ]

    def attach_switches(self) -> None:
        """Give every switch not yet in the world its link (its timers run on the running loop)."""
        for node in self.nodes.values():
            if not node.switch.ota.attached:
                node.switch.attach(_NodeLink(self, node))

    def add_switch(self, *, pairing: bool) -> Node:
        """A new factory-fresh switch (not on the network)."""
        taken = [COORDINATOR_NWK, *(node.switch.nwk for node in self.nodes.values())]
        switch = SimulatedSwitch.create(self.rng, taken_nwks=taken)
        while switch.ieee in self.nodes:
            switch = SimulatedSwitch.create(self.rng, taken_nwks=taken)
        node = Node(switch, pairing=pairing)
        self.nodes[switch.ieee] = node
        switch.attach(_NodeLink(self, node))
        self.coordinator.state_changed()
        return node

    def network_up(self, extended_pan_id: t.EUI64, pan_id: int, network_key: bytes | None) -> None:
        """The coordinator runs this network now (its key None or zeros when the chip does not know it)."""
        self.running = extended_pan_id
        self.running_credentials = _known_credentials(pan_id, network_key)

    def network_down(self) -> None:
        """The coordinator runs no network now."""
        self.running = None
        self.running_credentials = None

    def online(self, node: Node) -> bool:
        """True when the switch is on the network the coordinator runs: the same extended PAN id, and
        the same PAN id and key where both sides know them."""
        if self.running is None or node.network != self.running:
            return False
        known = node.credentials, self.running_credentials
        return None in known or known[0] == known[1]

    def online_nodes(self) -> list[Node]:
        """The switches on the running network."""
        return [node for node in self.nodes.values() if self.online(node)]

    def online_node(self, nwk: int) -> Node | None:
        """The switch on the running network with this NWK address."""
        node = self._by_nwk.get(nwk)
        if node is None or node.switch.nwk != nwk:  # the index is rebuilt on a miss: addresses change
            self._by_nwk = {each.switch.nwk: each for each in self.nodes.values() if each.network is not None}
            node = self._by_nwk.get(nwk)
        return node if node is not None and self.online(node) else None

    def close(self) -> None:
        """Stop every timer (the switches' too: OTA transfers are abandoned)."""
        for node in self.nodes.values():
            node.switch.attach(None)
        self.switch_timers.cancel_all()
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run `callback` after `delay` seconds (0: on the next loop iteration), cancelled by close()."""
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def run() -> None:
            self._handles.discard(handle)
            callback()

        handle = loop.call_later(delay, run)
        self._handles.add(handle)

    # --- permit join ---------------------------------------------------------------------------

    @property
    def permit_join_open(self) -> bool:
        """True while the coordinator or a switch admits joining devices."""
        return self.permit_parent() is not None

    def permit_parent(self) -> int | None:
        """The NWK address of a node that currently permits joining (the coordinator first)."""
        if self.running is None:
            return None
        now = asyncio.get_running_loop().time()
        open_nodes = sorted(nwk for nwk, deadline in self._permit_until.items() if deadline > now)
        return open_nodes[0] if open_nodes else None

    def permit(self, nwk: int, duration: int) -> None:
        """One node admits joining for `duration` seconds (0: it stops)."""
        self._permit_until[nwk] = asyncio.get_running_loop().time() + duration
        if duration:
            self._join_pairing_switches()

    def permit_everywhere(self, duration: int) -> None:
        """The coordinator and every answering switch admit joining (a broadcast permit)."""
        now = asyncio.get_running_loop().time()
        self._permit_until[COORDINATOR_NWK] = now + duration
        for node in self.online_nodes():
            if node.switch.responsive:
                self._permit_until[node.switch.nwk] = now + duration
        if duration:
            self._join_pairing_switches()

    def forget_permits(self) -> None:
        """The coordinator restarted: nobody admits joining any more."""
        self._permit_until.clear()

    def _join_pairing_switches(self) -> None:
        pairing = [node for node in self.nodes.values() if node.pairing and not self.online(node)]
        for index, node in enumerate(pairing):
            self.later(JOIN_SPACING * (index + 1), functools.partial(self._try_join, node))

    def _try_join(self, node: Node) -> None:
        if node.pairing and not self.online(node) and self.permit_join_open:
            self.join(node)

    # --- joining and leaving -----------------------------------------------------------------------

    def join(self, node: Node) -> None:
        """The switch joins through a node that permits joining, then announces itself."""
        parent = self.permit_parent()
        if parent is None or self.running is None:
            raise RuntimeError("permit join is closed")
        switch = node.switch
        taken = {n.switch.nwk for n in self.nodes.values() if n is not node and n.network is not None}
        if switch.nwk in taken or switch.nwk == COORDINATOR_NWK:
            switch.nwk = random_nwk(self.rng, taken)
        node.network = self.running
        node.credentials = self.running_credentials
        node.pairing = False
        switch.left = False
        self._by_nwk[switch.nwk] = node
        LOGGER.info("Switch %s joins as 0x%04X through 0x%04X", node.ieee_text, switch.nwk, parent)
        self.coordinator.device_joined(node, parent)
        self.later(0, lambda: self.emit(node, switch.announce()))
        self.coordinator.state_changed(membership=True)

    def leave(self, node: Node) -> None:
        """The switch leaves the network (reset by its user, or told to by the host)."""
        was_online = self.online(node)
        node.network = None
        node.credentials = None
        node.pairing = False
        node.switch.forget_network()
        LOGGER.info("Switch %s left the network", node.ieee_text)
        if was_online:
            self.coordinator.device_left(node)
        self.coordinator.state_changed(membership=True)

    # --- the air -------------------------------------------------------------------------------

    def emit(self, node: Node, frames: list[ApsFrame]) -> None:
        """Frames a switch sends, on its own or in reply: to the coordinator, if on its network."""
        switch = node.switch
        if switch.left and node.network is not None and not self.online(node):
            self.leave(node)  # it left while the coordinator's network was down
        if not self.online(node):
            if frames:
                LOGGER.info(
                    "Switch %s is not on the coordinator's network: its frames are lost", node.ieee_text
                )
            return
        for frame in frames:
            self.coordinator.frame_from_air(switch.nwk, frame)
        if switch.left:
            self.leave(node)
        self.coordinator.state_changed()

    def route(self, nwk: int) -> Route:
        """Where a unicast to `nwk` goes: a switch on the network that answers, or why not."""
        node = self.online_node(nwk)
        if node is None:
            return Route(None, Reach.NO_ROUTE)
        if not node.switch.responsive:
            return Route(node, Reach.NO_ACK)
        return Route(node, Reach.DELIVERED)

    def nwk_of(self, ieee: t.EUI64) -> int:
        """The NWK address of a device by IEEE address (0xFFFE: unknown)."""
        if ieee == self.coordinator.ieee:
            return COORDINATOR_NWK
        node = self.nodes.get(ieee)
        return node.switch.nwk if node is not None else 0xFFFE

    def deliver(self, node: Node, frame: ApsFrame, delay: float = 0.0) -> None:
        """The frame reaches the switch after `delay` seconds; its answers come back."""
        self.later(delay, lambda: self._unicast(node, frame))

    def _unicast(self, node: Node, frame: ApsFrame) -> None:
        if not self.online(node):
            return
        self._heard(node, frame)
        self.emit(node, node.switch.handle(frame))

    def _heard(self, node: Node, frame: ApsFrame) -> None:
        """What a router's stack does with a frame before its application sees it."""
        permit_join_request = frame.is_zdo and frame.cluster_id == MGMT_PERMIT_JOINING_REQ
        if permit_join_request and len(frame.payload) > 1 and node.switch.responsive:
            self.permit(node.switch.nwk, frame.payload[1])

    def broadcast(self, frame: ApsFrame, group: int | None = None) -> None:
        """The frame reaches every switch on the network (of `group`), on the next loop iteration."""
        self.later(0, lambda: self._fan_out(frame, group))

    def _fan_out(self, frame: ApsFrame, group: int | None) -> None:
        for node in self.online_nodes():
            if group is None or group in node.switch.groups:
                self._heard(node, frame)
                self.emit(node, node.switch.handle(frame, broadcast=True))
