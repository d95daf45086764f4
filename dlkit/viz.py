"""dlkit.viz (being written)."""
