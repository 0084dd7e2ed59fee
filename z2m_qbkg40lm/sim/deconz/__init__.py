"""The deCONZ coordinator emulator (ConBee II/III, RaspBee II): a front-end of the simulated world.

`slip` is the serial framing (SLIP with the checksum), `protocol` the command layer (commands
read and answers built with zigpy-deconz's own schemas, which mirror dresden elektronik's serial
protocol; unknown commands answered UNSUPPORTED), `chip` the firmware over the shared `sim.world`
(network parameters, device state, APS requests, confirms and indications, the state file), and
`serial` its end of the serial line (`sim.serial_line`: TCP or pty). `z2m_qbkg40lm.sim.emulator`
runs it with `--chip deconz`.
"""
