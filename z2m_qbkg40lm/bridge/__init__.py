"""The bridge: device state, /set and /get, bridge topics."""
