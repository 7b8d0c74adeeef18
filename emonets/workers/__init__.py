"""Guarded child processes: a native crash costs one unit; children die with their parent."""
