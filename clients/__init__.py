"""Client-side Flower glue: the ClientApp's mods (audit log) and its per-process silo sessions."""
