"""A Texas Instruments Z-Stack (ZNP) coordinator emulator hosting simulated QBKG40LM switches.

`nvram` is the emulated chip's non-volatile memory, `firmware` the Z-Stack that answers the MT
commands zigpy-znp sends, `link` the TCP and pseudo-terminal transports, `control` the scripting
API (presses, joins, faults) and its MQTT front end. `z2m_qbkg40lm.sim.emulator` runs them.
"""
