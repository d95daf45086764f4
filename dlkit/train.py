"""dlkit.train (being written)."""
