"""MQTT client: connection, reconnection, last will, publish and subscribe."""
