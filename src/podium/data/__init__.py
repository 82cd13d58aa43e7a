"""Data: reading images, ingesting competition folders, folds, transforms and datasets."""
