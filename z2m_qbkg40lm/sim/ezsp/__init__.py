"""A Silicon Labs EmberZNet (EZSP) coordinator emulator: the EZSP front-end of the simulated world.

`ash` is the serial framing (ASH version 2, from Silicon Labs' UG101), `ash_link` the NCP's side
of the ASH protocol (acknowledgements, resends, resets), `frames` the EZSP frames (legacy and
extended, from UG100), `ncp` the command layer (the version exchange, dispatch by command name,
callbacks; EZSP 13 as EmberZNet 7.4.4.0 speaks it, or EZSP 14 as 8.0.2.0 does), `stack_config`
the stack's configuration values, policies, values, tokens and counters, `network` what the
tokens keep of the network, `security` the keys, `messaging` the sends and incoming messages,
`chip` the network commands over the shared `sim.world` and the rest of the NCP, and `serial`
the NCP's end of the serial line (`sim.serial_line`: TCP or pty) with its line faults.
`z2m_qbkg40lm.sim.emulator` runs it with `--chip ezsp`.
"""
