"""dlkit.nn (being written)."""
