"""A Silicon Labs EmberZNet (EZSP) coordinator emulator, for bellows (issue in progress).

`ash` is its serial framing (ASH version 2, from Silicon Labs' UG101). The EZSP layer, the link
with its acknowledgements and retransmissions, and the protocol front-end over the simulated
switches shared with the Z-Stack emulator come next; `emulate --chip ezsp` does not exist yet.
"""
