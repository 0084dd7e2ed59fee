"""A Texas Instruments Z-Stack (ZNP) coordinator emulator: the MT front-end of the simulated world.

`nvram` is the emulated chip's non-volatile memory, `chip` and `firmware` the Z-Stack 3.30 that
answers the MT commands zigpy-znp sends over the shared `sim.world`, `firmware12` and `nvram12`
the same chip as a CC2531 running Z-Stack Home 1.2, `link` the MT framing on the serial line
(`sim.serial_line`: TCP or pty). `z2m_qbkg40lm.sim.emulator` runs it (`--chip znp`, `--chip
znp12`), `sim.control` scripts it.
"""
