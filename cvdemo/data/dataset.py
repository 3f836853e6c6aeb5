"""`load_dataset`: one entry point for built-in data sets, image folders and zip archives."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cvdemo.data.builtin import SOURCES, load_digits, load_torchvision
from cvdemo.data.folder import load_folder
from cvdemo.data.imageset import DataBundle, ImageSet
from cvdemo.data.split import stratified_split, stratified_subset
from cvdemo.errors import DataError

LIMIT_SEED = 0  # limits pick the same images whatever the run's seed


def load_dataset(source: str | Path, *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                 limit_train: int | None = None, limit_test: int | None = None,
                 image_size: int | None = None, skip_bad: bool = False,
                 cache_dir: str | Path | None = None, exclude: Sequence[str] = (), decode: bool = True) -> DataBundle:
    """Load a data set with train, validation and test splits.

    `source` is a built-in name (see SOURCES), an image folder or a .zip of one (a folder named like a
    built-in data set is read when given as a path, e.g. "./digits" or a Path object). Validation data
    is carved from the training split (`val_fraction` of it, stratified, with `seed`) when the
    source has none; a flat folder first holds out `test_fraction` of its images for testing.
    The digits split is fixed (60/20/20, seed 0). `limit_train` / `limit_test` keep stratified
    subsets (fixed seed) of the training split and of the validation and test splits, chosen
    before any image is decoded. `image_size` (pixels) is the side images are resized to when
    they cannot be held at their own size (default 224). `skip_bad` skips unreadable files
    (listed in `bundle.skipped`) instead of raising DataError. `cache_dir` holds torchvision
    downloads (default $CVDEMO_CACHE or ~/.cache/cvdemo). `exclude`: files of a folder or zip to leave out,
    URL-encoded paths inside it (see `cvdemo.data.folder.excluded_names`). `decode=False` (folders and zips
    only): no file is opened, every split lists its files lazily (see `cvdemo.data.folder.load_folder`).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be at least 0 and below 1, got {val_fraction}")
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must be at least 0 and below 1, got {test_fraction}")
    for name, limit in (("limit_train", limit_train), ("limit_test", limit_test)):
        if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
            raise DataError(f"{name} must be a whole number of at least 1, got {limit}")
    if image_size is not None and not 1 <= int(image_size) <= 4096:
        raise DataError(f"image_size must be between 1 and 4096 pixels, got {image_size}")
    if not isinstance(source, (str, Path)) or not str(source).strip():
        raise DataError(f"the data source must be one of {', '.join(SOURCES)}, an image folder or a .zip file")

    key = builtin_key(source)
    if is_builtin(source) and exclude:
        raise DataError(f"exclude lists files of a folder or zip; the built-in {key} has none: clear the list")
    if is_builtin(source):
        if key == "digits":
            classes, train, val, test = load_digits()
        else:
            classes, pool, test = load_torchvision(key, cache_dir)
            val_idx, train_idx = stratified_split(pool.labels, [val_fraction], seed)
            train, val = pool.subset(train_idx), pool.subset(val_idx)
        train = _limit(train, limit_train)
        val, test = _limit(val, limit_test), _limit(test, limit_test)
        return DataBundle(key, classes, train, val, test, train.channels, [])

    path = check_source(source)
    return load_folder(path, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                       limit_train=limit_train, limit_test=limit_test, image_size=image_size, skip_bad=skip_bad,
                       exclude=exclude, decode=decode)


def _limit(images: ImageSet, limit: int | None) -> ImageSet:
    if limit is None or limit >= len(images):
        return images
    return images.subset(stratified_subset(images.labels, int(limit), LIMIT_SEED))


def check_source(source: str | Path) -> Path:
    """The path of a data source that is not a built-in set, after checking that it exists; DataError (one
    sentence) if it does not. Cheap: nothing is read, so it can run before a run folder is made."""
    path = Path(source).expanduser()
    if not path.exists():
        kind = "zip file" if path.suffix.lower() == ".zip" else "data folder"
        if path.suffix or "/" in str(source) or "\\" in str(source):
            raise DataError(f"{kind} {path} does not exist: check the path, or use a built-in data set "
                            f"({', '.join(SOURCES)})")
        raise DataError(f"unknown data set {str(source)!r}: use one of {', '.join(SOURCES)}, "
                        f"or the path of an image folder or a .zip file")
    return path


def is_builtin(source: str | Path) -> bool:
    """True when `source` names a built-in data set (and is not a path to a folder of that name)."""
    return builtin_key(source) in SOURCES and not (isinstance(source, Path) and source.exists())


def builtin_key(source: str | Path) -> str:
    """A source name as the built-in sets are keyed ("CIFAR_10" -> "cifar10")."""
    key = str(source).strip().lower().replace("_", "-")
    return {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}.get(key, key)
