"""What the flows run on: task runners, the store lock, the progress hook (no flows here)."""
