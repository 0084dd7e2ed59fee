"""Radio layer: zigpy application, adapter table, Lumi cluster, events."""
