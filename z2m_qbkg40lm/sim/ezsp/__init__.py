"""A Silicon Labs EmberZNet (EZSP) coordinator emulator, for bellows (being built).

`ash` is its serial framing (ASH version 2, from Silicon Labs' UG101), `ash_link` the NCP's side
of the ASH protocol (acknowledgements, resends, resets), `frames` the EZSP frames (legacy and
extended, from UG100) and `ncp` the command layer: so far the version exchange (EZSP 13, as
EmberZNet 7.4 speaks it), `nop`, `echo`, and `invalidCommand` for everything else. The network
commands, the serial transports and the protocol front-end over the simulated switches shared
with the Z-Stack emulator come next; `emulate --chip ezsp` does not exist yet.
"""
