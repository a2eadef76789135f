"""Template mining (Drain3) and keyed event ids."""
