"""The synthetic demo dataset: two portraits animated per class, synthetic voices, an AFEW-style tree."""
