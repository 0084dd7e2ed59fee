"""The deCONZ coordinator emulator (ConBee II/III, RaspBee II): a front-end of the simulated world."""
