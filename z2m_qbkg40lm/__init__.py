"""Aqara QBKG40LM wall switch to MQTT, Zigbee2MQTT-compatible."""

__version__ = "0.1.0"
