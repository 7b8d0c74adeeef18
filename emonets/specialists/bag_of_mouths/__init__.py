"""The bag-of-mouths specialist: whitened, k-means-coded mouth patches and a logistic regression."""
