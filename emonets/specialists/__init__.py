"""The four specialists, one modality each, all behind the same fit / predict_proba contract."""
