"""Hostile input from the air: random ZCL frames sent by the switch, through the virtual radio, into
zigpy and the device's converters.

The frames leave the simulated switch like its own reports (`send_own`), so zigpy parses them and our
listeners, converters and bridge see whatever zigpy makes of them: random bytes on the switch's
clusters, attribute reports and read answers with random types and values, Lumi heartbeats with
random TLV bodies. Asserted: no unhandled exception in our code (zigpy may log and drop a frame it
cannot parse), no non-standard JSON published, and after each batch the switch is still served.
"""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import strategies as st

from tests.faults.harness import generate, record, scale, timed, traced_daemon
from tests.faults.hostile import tlv_bodies
from z2m_qbkg40lm.devices.qbkg40lm import ATTR_HEARTBEAT, LUMI_MANUFACTURER_CODE, SWITCH_ENDPOINT
from z2m_qbkg40lm.sim.frames import ApsFrame

CASES = scale(ci=400, full=10_000)
BATCH = 100
HA_PROFILE = 0x0104
COORDINATOR_ENDPOINT = 1
LUMI_CLUSTER = 0xFCC0
CLUSTERS = (0x0000, 0x0002, 0x0006, 0x0012, 0x0019, LUMI_CLUSTER)
ATTRIBUTES = (0x0000, 0x0001, 0x0055, 0x00F7, 0x0200, 0x0201, 0x0203, 0x00F0, 0x0009, 0x000A, 0xFFFF)
ZCL_TYPES = (0x10, 0x18, 0x20, 0x21, 0x23, 0x28, 0x29, 0x30, 0x39, 0x41, 0x42, 0x48, 0x4C, 0xE2, 0xFF, 0x00)

clusters = st.sampled_from(CLUSTERS) | st.integers(0, 0xFFFF)


def _header(frame_control: int, tsn: int, command: int) -> bytes:
    manufacturer = struct.pack("<H", LUMI_MANUFACTURER_CODE) if frame_control & 0x04 else b""
    return bytes([frame_control]) + manufacturer + bytes([tsn, command])


attribute_records = st.lists(
    st.tuples(
        st.sampled_from(ATTRIBUTES) | st.integers(0, 0xFFFF),
        st.sampled_from(ZCL_TYPES),
        st.binary(max_size=12),
    ),
    min_size=1,
    max_size=4,
).map(lambda items: b"".join(struct.pack("<HB", attr, kind) + value for attr, kind, value in items))

frame_controls = st.sampled_from([0x08, 0x18, 0x1C, 0x0C, 0x19, 0x09, 0x01]) | st.integers(0, 0xFF)
commands = st.sampled_from([0x01, 0x0A, 0x0B, 0x04, 0x07, 0x00, 0x02]) | st.integers(0, 0xFF)

frames = st.one_of(
    # Anything at all on one of the switch's clusters (or any other).
    st.builds(lambda cluster, body: (cluster, body, "random bytes"), clusters, st.binary(max_size=80)),
    # Well-framed ZCL with random command and random attribute records.
    st.builds(
        lambda cluster, fc, tsn, command, body: (cluster, _header(fc, tsn, command) + body, "zcl frame"),
        clusters,
        frame_controls,
        st.integers(0, 255),
        commands,
        attribute_records | st.binary(max_size=40),
    ),
    # Lumi heartbeat reports with random or mangled TLV bodies (and lying length prefixes).
    st.builds(
        lambda tsn, body, lie: (
            LUMI_CLUSTER,
            _header(0x1C, tsn, 0x0A)
            + struct.pack("<HBB", ATTR_HEARTBEAT, 0x41, (len(body) + lie) & 0xFF)
            + body,
            "heartbeat",
        ),
        st.integers(0, 255),
        tlv_bodies,
        st.sampled_from([0, 0, 0, 1, -1, 7]),
    ),
)


async def test_random_zcl_frames_from_the_switch_raise_nothing_in_our_code(tmp_path: Path) -> None:
    """Random ZCL frames from the switch (any cluster, random commands, attribute types and values,
    heartbeats with random TLV bodies) go through zigpy into the converters: no unhandled exception
    in our code, no non-standard JSON published, and the switch is served after every batch."""
    cases = generate(frames, CASES)
    async with traced_daemon(tmp_path) as run:
        device = run.daemon.radio.zigpy_device(run.ieee)
        switch = next(s for s in device.application.simulated_switches if str(s.ieee) == str(device.ieee))
        with timed() as elapsed:
            for start in range(0, len(cases), BATCH):
                switch.send_own(
                    [
                        ApsFrame(SWITCH_ENDPOINT, COORDINATOR_ENDPOINT, HA_PROFILE, cluster, payload)
                        for cluster, payload, _ in cases[start : start + BATCH]
                    ]
                )
                await run.serves()
        seconds = elapsed()
        unhandled = run.trace.unhandled()
        states = sum(m.topic == f"{run.base}/{run.name}" for m in run.trace.published)
    kinds: dict[str, int] = {}
    for _, _, kind in cases:
        kinds[kind] = kinds.get(kind, 0) + 1
    record(
        "hostile inbound ZCL frames",
        runs=len(cases),
        figure=f"{len(cases)} frames, {len(unhandled)} unhandled, "
        f"{len(run.trace.bad_json)} non-standard JSON, "
        f"{states} state messages, {seconds} s",
        cases=len(cases),
        unhandled=len(unhandled),
        bad_json=len(run.trace.bad_json),
        seconds=seconds,
        kinds=kinds,
    )
    assert not unhandled, f"{len(unhandled)} unhandled exception(s):\n" + "\n".join(unhandled[:5])
    assert not run.trace.bad_json, "\n".join(run.trace.bad_json[:5])
