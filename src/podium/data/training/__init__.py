"""Training-time data: folds, per-image transforms, batch augmentations, datasets and samplers, built on
`data.pixels`; never reads a competition folder itself."""
