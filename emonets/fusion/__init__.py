"""Fusion of the specialists' class probabilities: the fusers, their search and cross-validation, the fused model."""
