"""The face specialist: a ConvNet on aligned faces, time-pooled, then an SVM on the clip's segments."""
