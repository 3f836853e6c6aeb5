"""Everything a run builds from its config before the first step: data, model, normalisation, device.

    setup = build_setup(config)          # Setup: bundle, model on its device, layer groups, ...
    x = setup.prepare(images)            # uint8 (B, C, h, w) -> the model's normalised float input
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from cvdemo.config import RunConfig
from cvdemo.data import compute_mean_std, load_dataset, to_model_input
from cvdemo.data.dataset import check_source, is_builtin
from cvdemo.device import resolve_device, tune_for_speed
from cvdemo.errors import ConfigError
from cvdemo.models import count_parameters, create_model, get_spec
from cvdemo.models.registry import ensure_pretrained
from cvdemo.train import distributed
from cvdemo.train.groups import LayerGroup, apply_freezing, group_settings, plan_groups

__all__ = ["Setup", "model_kwargs", "load_data", "build_setup", "check_input_size", "check_before_run"]


@dataclass
class Setup:
    """Everything built from a config before the first step."""
    bundle: Any
    model: torch.nn.Module
    spec: Any
    image_size: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    params_total: int
    params_trainable: int
    groups: list[LayerGroup]
    channels_last: bool = False

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, h, w) -> float (B, in_channels, image_size, image_size) on the device, normalised."""
        x = to_model_input(images.to(self.device, non_blocking=True), size=self.image_size,
                           mean=self.mean, std=self.std, channels=self.in_channels)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def checkpoint_meta(self, config: RunConfig) -> dict[str, Any]:
        """What inference needs to rebuild and feed the model from a run folder alone."""
        return {"model": self.spec.name, "num_classes": len(self.bundle.classes),
                "classes": list(self.bundle.classes), "in_channels": self.in_channels,
                "image_size": self.image_size, "mean": list(self.mean), "std": list(self.std),
                "model_kwargs": model_kwargs(config)}


def model_kwargs(config: RunConfig) -> dict[str, Any]:
    """Architecture options the config adds to `create_model` (saved in checkpoints to rebuild the model)."""
    return {"zero_init_residual": True} if config.model.zero_init_residual else {}


def load_data(config: RunConfig, decode: bool = True) -> Any:
    """The DataBundle a run trains on: the same splits every time for the same config (`decode=False`, for a
    folder or zip: the same splits, their files listed but not opened; see `load_dataset`)."""
    d = config.data
    image_size = d.image_size or get_spec(config.model.name).input_size
    # Under torchrun the ranks of a machine share one cache: local rank 0 downloads and extracts a data set
    # there first, and the others read what it left (all at once they would write the same files together).
    with distributed.local_main_first():
        return load_dataset(d.source, val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                            seed=config.train.seed, limit_train=d.limit_train, limit_test=d.limit_test,
                            image_size=image_size, skip_bad=d.skip_bad, exclude=d.exclude, decode=decode)


def build_setup(config: RunConfig, load_weights: bool = True, bundle: Any = None) -> Setup:
    """Load the data and build the model (head replaced, groups planned) on the chosen device.

    `load_weights=False` skips downloading/loading pretrained weights (a resumed run loads its own).
    `bundle`: the data, already loaded (e.g. undecoded by `feature_cache.quick_bundle`), instead of loading it.
    """
    torch.manual_seed(config.train.seed)
    spec = get_spec(config.model.name)
    image_size = config.data.image_size or spec.input_size
    check_input_size(config, image_size)
    if bundle is None:
        bundle = load_data(config)
    in_channels = bundle.channels if spec.flexible_channels and not config.model.pretrained else 3
    with distributed.local_main_first():  # pretrained weights: downloaded once per machine, as the data
        model = create_model(spec.name, len(bundle.classes), pretrained=config.model.pretrained and load_weights,
                             in_channels=in_channels, **model_kwargs(config))
    mean: tuple[float, ...]
    std: tuple[float, ...]
    if config.model.pretrained:
        # Pretrained weights expect the normalisation they were trained with.
        mean, std = spec.normalization
    else:
        mean, std = compute_mean_std(bundle.train)
        if len(mean) != in_channels:  # grey data into a 3-channel network: same statistics per channel
            mean, std = mean * in_channels, std * in_channels
    groups = plan_groups(model, config)
    apply_freezing(groups, epoch=1)
    device = resolve_device(config.train.device)
    tune_for_speed(device)  # cuDNN autotuning and TF32 on CUDA; nothing elsewhere
    model.to(device)
    if config.train.channels_last:
        model.to(memory_format=torch.channels_last)
    total, trainable = count_parameters(model)
    return Setup(bundle, model, spec, image_size, in_channels, tuple(mean), tuple(std), device, total, trainable,
                 groups, config.train.channels_last)


def check_before_run(config: RunConfig) -> None:
    """Every mistake in `config` that can be found before a run folder is made, so that none leaves a `failed`
    run behind: an unknown model, a zip or folder that does not exist, a --freeze group or a count of
    --group-lr-mult values the model does not have, an image size its layers cannot take, and pretrained
    weights that cannot be had (torchvision's are downloaded here if they can be). Reads no images; a
    torchvision data set's download and unreadable files are still found by the run itself."""
    spec = get_spec(config.model.name)  # ModelError: unknown model, with the close names
    if not is_builtin(config.data.source):
        check_source(config.data.source)
    elif config.data.exclude:
        raise ConfigError(f"data.exclude lists files of a folder or zip; the built-in {config.data.source} has "
                          "none: clear the list")
    group_settings([name for name, _ in spec.groups], config)
    check_input_size(config, config.data.image_size or spec.input_size)
    if config.model.pretrained:
        ensure_pretrained(spec.name)


def check_input_size(config: RunConfig, image_size: int) -> None:
    """ConfigError when the architecture's layers shrink `image_size` images to nothing (e.g. AlexNet at 8 px),
    found by a forward pass on the meta device: no memory, no arithmetic."""
    _check_input_size(config.model.name, tuple(sorted(model_kwargs(config).items())), image_size)


@functools.lru_cache(maxsize=64)
def _check_input_size(name: str, kwargs: tuple[tuple[str, Any], ...], image_size: int) -> None:
    """`check_input_size` for one architecture and size, once per process: each run asks twice (before its
    folder is made, then in build_setup) and a sweep's arms ask again, and the meta pass costs 0.5 s for
    efficientnet_lite0 on a busy 2-core CPU (5 s for the first in a process, which loads torch's decompositions).

    At or above the registry's min_input_size the pass is skipped: every architecture is tested at that size
    (tests/test_models.py), convolutions and poolings only grow their output with their input, and the heads pool
    adaptively; only a size below it, where a model may really fail, pays for the pass."""
    spec = get_spec(name)
    if image_size >= spec.min_input_size:
        return
    try:
        with torch.device("meta"), torch.no_grad():
            model = create_model(spec.name, 2, in_channels=3, **dict(kwargs)).eval()
            model(torch.zeros(1, 3, image_size, image_size))
    except RuntimeError as e:
        text = str(e).lower()
        if "size" in text and any(w in text for w in ("too small", "greater than", "output size")):
            raise ConfigError(f"{spec.name} cannot take {image_size}x{image_size} images (its layers shrink them "
                              f"to nothing): use a larger --image-size, e.g. its default {spec.input_size}") from None
        # anything else the meta device cannot run is left for the real forward pass
