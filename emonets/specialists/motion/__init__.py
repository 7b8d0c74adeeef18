"""The motion specialist: a synchrony autoencoder on space-time blocks, a bag of words, a chi2 SVM."""
