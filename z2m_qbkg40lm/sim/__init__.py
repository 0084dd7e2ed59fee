"""Simulated hardware: the QBKG40LM firmware model and the virtual coordinator."""
