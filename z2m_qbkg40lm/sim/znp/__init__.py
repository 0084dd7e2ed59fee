"""A Texas Instruments Z-Stack (ZNP) coordinator emulator: the MT front-end of the simulated world.

`nvram` is the emulated chip's non-volatile memory, `chip` and `firmware` the Z-Stack that
answers the MT commands zigpy-znp sends over the shared `sim.world`, `link` the MT framing on the
serial line (`sim.serial_line`: TCP or pty). `z2m_qbkg40lm.sim.emulator` runs it (`--chip znp`),
`sim.control` scripts it.
"""
