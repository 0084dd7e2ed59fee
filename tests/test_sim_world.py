"""The simulated world every emulated coordinator runs over: joins, permit join, routes, the air.

The coordinator here records what the world tells it; the chips' own front-ends are tested with
their real host libraries (test_znp_emulator.py, test_ezsp_emulator.py).
"""

from __future__ import annotations

import asyncio
import random

import zigpy.types as t

from z2m_qbkg40lm.sim.frames import ZDO_ENDPOINT, ZDO_PROFILE, ApsFrame
from z2m_qbkg40lm.sim.world import JOIN_SPACING, NetworkCredentials, Node, Reach, SimulatedWorld

NETWORK = t.EUI64.convert("dd:dd:dd:dd:dd:dd:dd:dd")
COORDINATOR = t.EUI64.convert("00:12:4b:00:00:00:00:01")
TIMEOUT = 5.0


class Recorder:
    """A coordinator that writes down what the world tells it."""

    ieee = COORDINATOR

    def __init__(self) -> None:
        self.joined: list[tuple[str, int]] = []
        self.left: list[str] = []
        self.frames: asyncio.Queue[tuple[int, ApsFrame]] = asyncio.Queue()
        self.saves: list[bool] = []

    def device_joined(self, node: Node, parent: int) -> None:
        self.joined.append((node.ieee_text, parent))

    def device_left(self, node: Node) -> None:
        self.left.append(node.ieee_text)

    def frame_from_air(self, src: int, frame: ApsFrame) -> None:
        self.frames.put_nowait((src, frame))

    def state_changed(self, *, membership: bool = False) -> None:
        self.saves.append(membership)


def _world() -> tuple[SimulatedWorld, Recorder]:
    recorder = Recorder()
    world = SimulatedWorld(recorder, rng=random.Random(7))
    world.running = NETWORK
    return world, recorder


async def test_switches_in_pairing_mode_join_one_after_another_and_announce() -> None:
    world, recorder = _world()
    first, second = world.add_switch(pairing=True), world.add_switch(pairing=True)
    assert not world.permit_join_open
    world.permit(0x0000, 60)
    src, announce = await asyncio.wait_for(recorder.frames.get(), TIMEOUT)
    assert announce.cluster_id == 0x0013 and src == first.switch.nwk  # Device_annce
    await asyncio.wait_for(recorder.frames.get(), TIMEOUT)
    assert recorder.joined == [(first.ieee_text, 0x0000), (second.ieee_text, 0x0000)]
    assert world.online(first) and world.online(second) and first.switch.nwk != second.switch.nwk
    assert True in recorder.saves, "a membership is saved at once"
    world.close()


async def test_nothing_joins_while_permit_join_is_closed_or_the_network_is_down() -> None:
    world, recorder = _world()
    node = world.add_switch(pairing=True)
    world.permit(0x0000, 0)
    await asyncio.sleep(3 * JOIN_SPACING)  # the time a join would take; there is no event for none
    assert recorder.joined == [] and not world.online(node)
    world.running = None
    world.permit(0x0000, 60)
    assert world.permit_parent() is None
    world.close()


async def test_routes_say_whether_a_unicast_arrives() -> None:
    world, _recorder = _world()
    node = world.add_switch(pairing=False)
    assert world.route(node.switch.nwk).reach is Reach.NO_ROUTE, "not on the network yet"
    world.permit(0x0000, 60)
    world.join(node)
    assert world.route(node.switch.nwk).reach is Reach.DELIVERED
    node.switch.responsive = False
    assert world.route(node.switch.nwk).reach is Reach.NO_ACK
    assert world.nwk_of(COORDINATOR) == 0x0000 and world.nwk_of(node.switch.ieee) == node.switch.nwk
    world.close()


async def test_a_broadcast_permit_join_opens_the_switches_too() -> None:
    world, recorder = _world()
    router = world.add_switch(pairing=False)
    world.permit(0x0000, 60)
    world.join(router)
    world.forget_permits()
    permit = ApsFrame(ZDO_ENDPOINT, ZDO_ENDPOINT, ZDO_PROFILE, 0x0036, bytes([0x01, 60, 0x00]))
    world.deliver(router, permit)
    await asyncio.wait_for(recorder.frames.get(), TIMEOUT)  # the announce of the join
    while world.permit_parent() is None:
        await asyncio.wait_for(recorder.frames.get(), TIMEOUT)  # the router's answer comes first
    assert world.permit_parent() == router.switch.nwk
    world.close()


async def test_a_broadcast_permit_join_opens_every_answering_router() -> None:
    world, _recorder = _world()
    loud, silent = world.add_switch(pairing=False), world.add_switch(pairing=False)
    world.permit(0x0000, 60)
    world.join(loud)
    world.join(silent)
    world.forget_permits()
    silent.switch.responsive = False
    opened = asyncio.get_running_loop().create_future()
    world.broadcast(ApsFrame(ZDO_ENDPOINT, ZDO_ENDPOINT, ZDO_PROFILE, 0x0036, bytes([0x02, 60, 0x00])))
    world.later(0, lambda: opened.set_result(world.permit_parent()))  # after the broadcast's turn
    assert await asyncio.wait_for(opened, TIMEOUT) == loud.switch.nwk
    world.close()


async def test_a_switch_that_left_while_the_network_was_down_is_off_it() -> None:
    world, recorder = _world()
    node = world.add_switch(pairing=False)
    world.permit(0x0000, 60)
    world.join(node)
    world.running = None
    node.switch.leave_network()
    assert node.network is None and recorder.left == [], "the coordinator was not running to hear it"
    records = world.records()
    assert records[0]["network"] is None
    copy, _ = _world()
    copy.load(records)
    assert [each.switch.ieee for each in copy.nodes.values()] == [node.switch.ieee]
    world.close()


async def test_a_switch_talks_only_to_a_coordinator_with_its_network_key_and_pan_id() -> None:
    world, recorder = _world()
    ours = NetworkCredentials(0x1A62, bytes(range(16)))
    world.running_credentials = ours
    node = world.add_switch(pairing=True)
    world.permit(0x0000, 60)
    await asyncio.wait_for(recorder.frames.get(), TIMEOUT)  # joined and announced
    assert node.credentials == ours and world.records()[0]["credentials"] == ours.to_json()
    for other in (NetworkCredentials(0x1A62, bytes(16 * [7])), NetworkCredentials(0x1A63, ours.network_key)):
        world.running_credentials = other  # the same extended PAN id: another network all the same
        assert not world.online(node) and world.route(node.switch.nwk).reach is Reach.NO_ROUTE
        world.emit(node, node.switch.announce())
        assert recorder.frames.empty(), "its frames are lost"
    world.close()
    # A chip that does not tell its credentials, or a switch from an older state file: the
    # extended PAN id alone decides, as before.
    moved, _recorder = _world()
    moved.load(world.records())
    [record] = moved.nodes.values()
    assert record.credentials == ours and moved.online(record)
    moved.running_credentials = ours
    assert moved.online(record)
    moved.close()
