"""A Silicon Labs EmberZNet (EZSP) coordinator emulator, for bellows (being built).

`ash` is its serial framing (ASH version 2, from Silicon Labs' UG101), `ash_link` the NCP's side
of the ASH protocol (acknowledgements, resends, resets), `frames` the EZSP frames (legacy and
extended, from UG100) and `ncp` the command layer: so far the version exchange (EZSP 13, as
EmberZNet 7.4 speaks it), `nop`, `echo`, and `invalidCommand` for everything else; `serial` is
the NCP's end of one host connection (an asyncio protocol a TCP listener serves). The network
commands, the pty transport, the listener of `emulate --chip ezsp` and the protocol front-end over
the simulated switches shared with the Z-Stack emulator come next.
"""
