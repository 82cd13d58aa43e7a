"""Data, by concern: `pixels` (decoding, checks, hashes, the cache), `folders` (competition folders -> a
`Competition`), `training` (folds, transforms, datasets); `integrity` and `inspection` join them (duplicate clusters,
conflicts, test leaks; `podium inspect`)."""
