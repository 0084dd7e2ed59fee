"""Firmware updates: OTA upgrade files (parsing, checks, a builder), where they come from, and the
zigpy provider that offers only files that passed the checks."""
