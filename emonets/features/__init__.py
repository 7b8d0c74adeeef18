"""Per-clip feature extraction: the stages' unit functions, one partition per unit, and the table decoders."""
