"""Device definitions and pure converters (no zigpy radio, no MQTT)."""
