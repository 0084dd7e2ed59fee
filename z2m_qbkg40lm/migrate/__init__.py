"""Taking over a Zigbee2MQTT installation, and handing one back: `import-z2m` and `export-z2m`.

One reader per file Zigbee2MQTT keeps (configuration.yaml with its secrets, database.db,
coordinator_backup.json, state.json), the importer that turns them into this daemon's
configuration and data directory, and the exporter that writes them back.
"""
