"""A Silicon Labs EmberZNet (EZSP) coordinator emulator, for bellows (being built).

`ash` is its serial framing (ASH version 2, from Silicon Labs' UG101), `ash_link` the NCP's side
of the ASH protocol (acknowledgements, resends, resets), `frames` the EZSP frames (legacy and
extended, from UG100). The EZSP commands themselves, the serial
transports and the protocol front-end over the simulated switches shared with the Z-Stack emulator
come next; `emulate --chip ezsp` does not exist yet.
"""
