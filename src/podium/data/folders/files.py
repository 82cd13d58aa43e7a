"""Which files of a competition folder are images, which are ignored (and why), and which file each CSV id names.

Ignored, never trained on, and counted by ``podium inspect``: hidden files (``.DS_Store``, ``Thumbs.db`` is not hidden
but is no image), macOS AppleDouble files (``._x.png``), anything under ``__MACOSX/`` or a hidden folder, and files
without an image extension. Ids match file names exactly, then with an image extension added, then ignoring case when
exactly one file fits; Windows separators (``train_images\\x.png``) are read as ``/``.
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from podium.core.errors import PodiumError, list_some
from podium.core.io import existing_folder
from podium.data.pixels.images import check_images, is_image

SKIPPED_DIRS = ("__MACOSX",)  # zips made on a Mac carry AppleDouble copies of every file there
# where a competition keeps its images, in the order they are looked for (data.image_dir / data.test_dir override)
TRAIN_DIRS = ("train_images", "images", "train", "train_imgs", ".")
TEST_DIRS = ("test_images", "test", "images", "test_imgs", ".")
NEAR_MISS_LIMIT = 50_000  # file names searched for a "did you mean" (difflib is linear per id)


def ignored_kind(name: str) -> str | None:
    """Why a file called ``name`` is not read as an image (``appledouble``, ``hidden``, ``not_image``), or None."""
    if name.startswith("._"):
        return "appledouble"
    if name.startswith("."):
        return "hidden"
    return None if is_image(name) else "not_image"


def skipped_dir(name: str) -> bool:
    """Whether a folder is never searched for images (hidden folders, ``__MACOSX``)."""
    return name.startswith(".") or name in SKIPPED_DIRS


def shown_name(path: str, root: Path) -> str:
    """``path`` relative to ``root`` as printable text: bytes that are not UTF-8 written as ``\\xe9``."""
    return os.fsencode(os.path.relpath(path, root)).decode("utf-8", "backslashreplace")


def check_name(path: str, root: Path) -> str:
    """``path`` itself, or a one-line error when its name is not UTF-8 (ids go into UTF-8 CSVs: folds, submission)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise PodiumError(
            f"File name {shown_name(path, root)} is not UTF-8 text; rename it (podium writes ids to UTF-8 CSVs), e.g. "
            f"`convmv -f latin1 -t utf8 -r --notest {root}`, or remove it."
        ) from None
    return path


def walk_images(folder: Path, root: Path) -> Iterator[str]:
    """Every image under ``folder``, sorted, skipping hidden and ``__MACOSX`` folders and ignored files; stops on a
    file name that is not UTF-8 (``check_name``)."""
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not skipped_dir(d))
        for f in sorted(files):
            if is_image(f):
                yield check_name(os.path.join(dirpath, f), root)


def list_images(folder: str | Path, check: bool = True) -> tuple[list[str], list[str]]:
    """Ids (paths relative to ``folder``, ``/``-separated) and absolute paths of every image below ``folder``, sorted
    (no hidden, AppleDouble or ``__MACOSX`` files): what ``--images DIR`` predicts. An empty folder, or (``check``)
    any file that cannot be decoded, stops it in one line naming them, before a model is loaded."""
    root = existing_folder(folder, "Image folder").resolve()
    paths = sorted(Path(p) for p in walk_images(root, root))
    if not paths:
        raise PodiumError(f"{root} holds no images (.jpg, .png, ...).")
    bad = check_images([str(p) for p in paths]) if check else {}
    if bad:
        raise PodiumError(f"{len(bad)} image(s) cannot be read: "
                          f"{list_some([f'{os.path.relpath(p, root)} ({w})' for p, w in bad.items()])}; remove or "
                          "replace them.")
    return [p.relative_to(root).as_posix() for p in paths], [str(p) for p in paths]


def is_file(entry: os.DirEntry) -> bool:
    """Whether a directory entry is a file (following links); a link to itself or to nowhere is not (no OSError)."""
    try:
        return entry.is_file()
    except OSError:
        return False


def is_dir(entry: os.DirEntry) -> bool:
    """Whether a directory entry is a folder (following links); a link to itself or to nowhere is not."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def broken_link(entry: os.DirEntry) -> bool:
    """Whether an entry is a link that leads nowhere readable (missing target, or a loop such as a link to itself)."""
    return entry.is_symlink() and not os.path.exists(entry.path)


def has_images(folder: Path) -> bool:
    """Whether any image lies under ``folder`` (hidden and ``__MACOSX`` folders skipped)."""
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not skipped_dir(d)]
        if any(is_image(f) for f in files):
            return True
    return False


@dataclass
class FolderIndex:
    """The files directly in one folder, by name, by image stem, and both lower-cased (ambiguous ones dropped)."""

    folder: Path
    names: dict[str, str] = field(default_factory=dict)
    folded: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, folder: Path) -> FolderIndex:
        """Index ``folder`` (ignored files such as ``._x.png`` are left out)."""
        index = cls(folder)
        stems: dict[str, str] = {}
        with os.scandir(folder) as it:
            for e in it:
                if is_file(e) and ignored_kind(e.name) in (None, "not_image"):
                    index.names[e.name] = e.path
                    if is_image(e.name):
                        stems.setdefault(os.path.splitext(e.name)[0], e.path)
        index.names = {**stems, **index.names}
        for key, path in index.names.items():
            bucket = index.folded.setdefault(key.lower(), [])
            if path not in bucket:
                bucket.append(path)
        return index

    def find(self, name: str) -> str | None:
        """The file an id names: exact name or stem, else the one file whose name or stem matches ignoring case."""
        hit = self.names.get(name)
        if hit is None:
            folded = self.folded.get(name.lower(), [])
            hit = folded[0] if len(folded) == 1 else None
        return hit

    def near_miss(self, name: str) -> str:
        """`` (did you mean 'x.PNG'?)`` naming the closest file names, or an empty string."""
        same = self.folded.get(name.lower(), [])
        files = sorted({os.path.basename(p) for p in self.names.values()})[:NEAR_MISS_LIMIT]
        close = sorted(os.path.basename(p) for p in same) or difflib.get_close_matches(name, files, n=1, cutoff=0.75)
        return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _find(index: FolderIndex, root: Path, id_: str) -> str | None:
    name = id_.replace("\\", "/").removeprefix("./")
    if "/" not in name:
        return index.find(name)
    for candidate in (index.folder / name, root / name):
        if candidate.is_file():
            return str(candidate)
    parent, _, base = name.rpartition("/")
    inside = (root / parent).resolve() == index.folder.resolve() or parent.rsplit("/", 1)[-1] == index.folder.name
    return index.find(base) if inside else None


def resolve_images(root: Path, ids: list[str], configured: str, candidates: tuple[str, ...], what: str
                   ) -> list[str]:
    """Find each id's image file in the best candidate folder (see the module's matching rules), or name the ids
    without one, with the nearest file names."""
    folders = [root / configured] if configured else [root / c for c in candidates if (root / c).is_dir()]
    if configured and not folders[0].is_dir():
        raise PodiumError(f"Image folder {folders[0]} does not exist; fix data.image_dir/data.test_dir.")
    best: tuple[int, list[str | None], FolderIndex | None] = (-1, [], None)
    for folder in folders:
        index = FolderIndex.of(folder)
        paths = [_find(index, root, i) for i in ids]
        found = sum(p is not None for p in paths)
        if found > best[0]:
            best = (found, paths, index)
        if found == len(ids):
            break
    found, paths, index = best
    missing = [i for i, p in zip(ids, paths) if p is None]
    if missing or index is None:
        where = index.folder.relative_to(root) if index is not None else "any of " + ", ".join(candidates)
        shown = [i + (index.near_miss(i.replace("\\", "/").rsplit("/", 1)[-1]) if index and k < 5 else "")
                 for k, i in enumerate(missing or ids)]
        raise PodiumError(
            f"{len(missing or ids)} {what} have no image file in {where} (looked for the id, the id plus an image "
            f"extension, and both ignoring case): {list_some(shown)}. Put the images there, fix the ids, or set the "
            "folder in the config."
        )
    return [str(p) for p in paths]


def ignored_files(root: Path, used: list[str]) -> dict[str, dict]:
    """What ``podium inspect`` reports as ignored: per kind (appledouble, hidden, not_image, macosx, unlisted_image,
    non_utf8_name, broken_link: a symbolic link to itself or to nothing), the count and up to five examples, over
    the folders that hold the used images and the data
    folder's ``__MACOSX``."""
    used_set = set(used)
    found: dict[str, list[str]] = {}
    folders = {os.path.dirname(p) for p in used}
    for folder in sorted(folders):
        with os.scandir(folder) as it:
            for e in it:
                if e.path in used_set or not (is_file(e) or broken_link(e)):
                    continue
                kind = "broken_link" if broken_link(e) else ignored_kind(e.name) or "unlisted_image"
                try:
                    e.name.encode("utf-8")
                except UnicodeEncodeError:
                    kind = "non_utf8_name"
                found.setdefault(kind, []).append(shown_name(e.path, root))
    for d in SKIPPED_DIRS:
        for dirpath, _, files in os.walk(root / d):
            found.setdefault("macosx", []).extend(os.path.relpath(os.path.join(dirpath, f), root) for f in files)
    counts = Counter({k: len(v) for k, v in found.items() if v})
    return {k: {"count": n, "examples": sorted(found[k])[:5]} for k, n in counts.most_common()}


def nested_dirs(root: Path, word: str) -> tuple[str, ...]:
    """Image folders two levels down whose name holds ``word`` (SIIM-ISIC's ``jpeg/train``), as relative paths."""
    def subdirs(folder: str | Path) -> list[str]:  # scandir's entry types need no stat of the (many) image files
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if is_dir(e) and not skipped_dir(e.name))

    return tuple(f"{child}/{g}" for child in subdirs(root) for g in subdirs(root / child) if word in g.lower())
