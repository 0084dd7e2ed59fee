"""Simulated hardware: the QBKG40LM firmware model (`switch`), the virtual zigpy radio, and the
coordinator emulators: one simulated world (`world`) with a protocol front-end per chip (`znp`
for Z-Stack 3.30 and Home 1.2, `ezsp`, `deconz`), their serial line, and the scripting API
(`control`)."""
