"""Dataset layouts, one module each: a CSV of ids and labels (``csv_table``), a folder per class (``class_folders``),
labels in file names (``file_names``). A new layout (DICOM, ...) is one module here with its ``Layout``, registered
below."""

from podium.data.folders.layouts import class_folders, csv_table, file_names
from podium.data.folders.layouts.layout import LAYOUTS, Layout, RawLabels, detect_layout

# Registered here rather than in their modules so that the order, which is the order ``auto`` tries them in, is
# written down: a folder with a train.csv and class folders is read by its CSV, and names are read for labels only
# where neither is there.
LAYOUTS.register("csv")(csv_table.LAYOUT)
LAYOUTS.register("folders")(class_folders.LAYOUT)
LAYOUTS.register("filenames")(file_names.LAYOUT)

__all__ = ["LAYOUTS", "Layout", "RawLabels", "detect_layout"]
