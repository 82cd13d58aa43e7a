"""Images as pixels: decoding (JPEG, PNG, ...), per-file checks and hashes, duplicate clusters, preprocessing ops and
the decoded-image cache. The bottom of `data`: it imports nothing else of it."""
