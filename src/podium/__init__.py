"""podium: a Kaggle-style image-classification dataset in, a validated model and submission out."""

__version__ = "0.1.0"
