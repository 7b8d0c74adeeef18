"""The audio specialist: an MLP over MFCC context windows, top-k pooled over time, a seed ensemble."""
