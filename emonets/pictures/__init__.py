"""Pictures of a prediction: timelines of the class probabilities and the annotated video."""
