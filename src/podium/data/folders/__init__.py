"""Competition folders as downloaded -> a `Competition`: layouts, label columns, CSV reading, walking folders, extra
labelled data. A new layout or label source goes here; it reads images only through `data.pixels`."""
