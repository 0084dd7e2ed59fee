"""The fault suite: broker restarts, daemon crashes, adapter faults and generated hostile input."""
