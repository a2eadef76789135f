"""Loading raw logs of a silo: real Loghub formats and the synthetic default."""
