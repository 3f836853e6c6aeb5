"""The model registry: what each architecture is, and how to build it.

Every architecture registers a builder under a name together with a `ModelSpec`:
plain metadata (input size, normalisation, layer groups, head and Grad-CAM layer)
that the CLI, the app and the trainer read without building anything. Builders
import torchvision lazily, so importing the registry stays cheap.

`create_model` is the one way to get a network: it validates the request, builds
the architecture (with pretrained weights if asked), and puts a fresh linear head
with the requested number of classes in place of the ImageNet one.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from cvdemo.errors import ModelError
from cvdemo.models.weights import (
    ensure_torchvision_weights,
    imagenet_categories,
    package_weights_available,
    package_weights_file,
    torchvision_weights_cached,
)

Builder = Callable[..., nn.Module]

# Arguments every builder takes; anything else a builder declares is a model-specific option.
_BUILDER_ARGS = ("num_classes", "pretrained", "in_channels")
PRETRAINED_SOURCES = (None, "torchvision", "package")
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class ModelSpec:
    """Static facts about a registered architecture (nothing here needs the network built)."""

    name: str
    family: str                 # "lenet", "alexnet", "vgg", "resnet", ...
    input_size: int             # default square input size in pixels
    # Layer groups from stem to head: (group name, dotted module paths). The last group is the head;
    # every parameter of a built model belongs to exactly one group.
    groups: tuple[tuple[str, tuple[str, ...]], ...]
    head: str                   # dotted path of the final nn.Linear classifier
    cam_layer: str              # dotted path of the module whose output is the last spatial feature map
    pretrained: str | None      # None, "torchvision" (downloadable weights) or "package" (ships offline)
    mean: tuple[float, float, float] | None  # normalisation the pretrained weights expect
    std: tuple[float, float, float] | None
    description: str            # one line
    flexible_channels: bool     # True: the builder accepts any in_channels; False: 3-channel input only
    min_input_size: int = 32    # smallest square input the architecture accepts

    @property
    def normalization(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(mean, std) per RGB channel that the pretrained weights expect, for input scaled to [0, 1].

        ModelError for an architecture without pretrained weights: a network trained from scratch is
        normalised with its own data's statistics, which live in its checkpoint, not here.
        """
        if self.mean is None or self.std is None:
            raise ModelError(f"{self.name} has no pretrained weights, so no normalisation of its own; "
                             "use the mean and std of the data it is trained on")
        return self.mean, self.std


@dataclass(frozen=True)
class _Entry:
    spec: ModelSpec
    builder: Builder
    options: tuple[str, ...]    # model-specific keyword arguments the builder accepts
    weights_from: str | None    # torchvision model whose weights file this model uses
    pretrained_head: bool       # the pretrained weights include a 1000-class ImageNet head


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, *, weights_from: str | None = None, pretrained_head: bool = True,
                   **spec_fields: Any) -> Callable[[Builder], Builder]:
    """Decorator that registers `builder(num_classes, pretrained, in_channels, **options)` under `name`.

    `spec_fields` are the remaining `ModelSpec` fields. `weights_from` names the torchvision model
    whose ImageNet weights a "torchvision" model loads (default: `name` itself); `pretrained_head`
    is False when the pretrained weights cover the body only (the head is always new).
    """
    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        spec = ModelSpec(name=name, **spec_fields)
        _check_spec(spec)
        params = inspect.signature(builder).parameters
        missing = [a for a in _BUILDER_ARGS if a not in params]
        if missing:
            raise TypeError(f"builder for {name!r} lacks the arguments {missing}")
        options = tuple(p for p in params if p not in _BUILDER_ARGS
                        and params[p].kind in (inspect.Parameter.KEYWORD_ONLY,
                                               inspect.Parameter.POSITIONAL_OR_KEYWORD))
        source = (weights_from or name) if spec.pretrained == "torchvision" else None
        _REGISTRY[name] = _Entry(spec, builder, options, source, pretrained_head)
        return builder

    return decorate


def _check_spec(spec: ModelSpec) -> None:
    """Catch registration mistakes at import time rather than in a user's run."""
    if spec.pretrained not in PRETRAINED_SOURCES:
        raise ValueError(f"{spec.name}: pretrained must be one of {PRETRAINED_SOURCES}")
    if (spec.pretrained is None) != (spec.mean is None) or (spec.mean is None) != (spec.std is None):
        raise ValueError(f"{spec.name}: mean/std are given exactly when there are pretrained weights")
    if not spec.groups or spec.groups[-1][1] != (spec.head,):
        raise ValueError(f"{spec.name}: the last group must hold the head {spec.head!r} alone")
    paths = [p for _, group in spec.groups for p in group]
    if len(paths) != len(set(paths)):
        raise ValueError(f"{spec.name}: a module path appears in two groups")
    if spec.min_input_size > spec.input_size:
        raise ValueError(f"{spec.name}: min_input_size exceeds input_size")


def list_models() -> list[str]:
    """Names of all registered architectures, in registration order (small nets first)."""
    return list(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        pass
    names = list_models()
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
    hint = f"did you mean {_or(close)}?" if close else f"choose one of {', '.join(names)}"
    raise ModelError(f"unknown model '{name}': {hint}") from None


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` of a registered model; an unknown name raises ModelError with close matches."""
    return _entry(name).spec


def create_model(name: str, num_classes: int | None, *, pretrained: bool = False, in_channels: int = 3,
                 **kwargs: Any) -> nn.Module:
    """Build model `name` with a fresh `num_classes`-way linear head.

    With `pretrained=True` the body starts from the model's ImageNet weights (downloaded into the
    torch hub cache if needed); `num_classes=None` then keeps the original 1000-class ImageNet head,
    for prediction without training. `kwargs` are model-specific options (e.g. `zero_init_residual`
    for ResNets). Every problem the caller can fix raises ModelError.
    """
    entry = _entry(name)
    spec = entry.spec
    if num_classes is None:
        if not pretrained:
            raise ModelError(f"{name} needs a number of classes when it is trained from scratch; "
                             "pass num_classes, or pretrained=True to keep the ImageNet head")
        if spec.pretrained is not None and not entry.pretrained_head:
            raise ModelError(f"{name}'s pretrained weights cover the backbone only, so it has no ImageNet head "
                             "to predict with; pass num_classes and train it first")
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"num_classes must be a positive whole number, not {num_classes!r}")
    if pretrained and spec.pretrained is None:
        raise ModelError(f"{name} has no pretrained weights; train it from scratch (pretrained off) or choose "
                         "a pretrained model such as efficientnet_lite0 (works offline), resnet18 or resnet50")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ModelError(f"in_channels must be a positive whole number, not {in_channels!r}")
    if in_channels != 3 and not spec.flexible_channels:
        raise ModelError(f"{name} takes 3-channel (RGB) input, not {in_channels}; "
                         "convert the images to RGB or choose a model that accepts any channel count")
    unknown = sorted(set(kwargs) - set(entry.options))
    if unknown:
        accepted = f"it accepts only {', '.join(entry.options)}" if entry.options else "it takes no options"
        raise ModelError(f"{name} has no option {', '.join(unknown)}: {accepted}")

    # Pretrained weights come with their ImageNet head: build that, then swap in a fresh one.
    imagenet_head = pretrained and entry.pretrained_head
    model = entry.builder(num_classes=IMAGENET_CLASSES if imagenet_head else num_classes,
                          pretrained=pretrained, in_channels=in_channels, **kwargs)
    head = get_module(model, spec.head)
    if not isinstance(head, nn.Linear):  # a registration bug, not a user error
        raise TypeError(f"{name}: head {spec.head!r} is {type(head).__name__}, not nn.Linear")
    if num_classes is not None and (imagenet_head or head.out_features != num_classes):
        set_module(model, spec.head, nn.Linear(head.in_features, num_classes))
    follow_batch_statistics(model)
    return model


BN_MOMENTUM = 0.1  # PyTorch's default


def follow_batch_statistics(model: nn.Module) -> None:
    """Batch norms whose running statistics move by less than BN_MOMENTUM per step move by that much:
    efficientnet_lite0 and the MobileNetV3s use TensorFlow's 0.01, made for ImageNet's hundreds of thousands
    of steps. A classroom fine-tune of a few hundred steps then evaluates with ImageNet's statistics, not its
    data's: Lite0 pretrained, 2 epochs on digits at 32 px, reached 89.6% on training images but 54.7% on the
    test split with 0.01 and 95.8% with 0.1 (measured). Pretrained weights and statistics are unchanged;
    frozen groups run in inference mode and never update theirs."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is not None \
                and module.momentum < BN_MOMENTUM:
            module.momentum = BN_MOMENTUM


def pretrained_offline(name: str) -> bool:
    """True if `name`'s pretrained weights can be loaded right now without network access."""
    entry = _entry(name)
    if entry.spec.pretrained == "package":
        return package_weights_available(name)
    if entry.spec.pretrained == "torchvision":
        return torchvision_weights_cached(entry.weights_from)
    return False


def ensure_pretrained(name: str) -> None:
    """Make `name`'s pretrained weights loadable now: torchvision's are downloaded into the hub cache if they
    are not there yet; ModelError (one sentence: what to do offline) when they cannot be had."""
    entry = _entry(name)
    if entry.spec.pretrained is None:
        raise ModelError(f"{name} has no pretrained weights; train it from scratch (pretrained off) or choose "
                         "a pretrained model such as efficientnet_lite0 (works offline), resnet18 or resnet50")
    if entry.spec.pretrained == "package":
        package_weights_file(name)  # ModelError naming the package to install
    elif entry.weights_from is not None:
        ensure_torchvision_weights(name, entry.weights_from)


def get_module(model: nn.Module, dotted: str) -> nn.Module:
    """The submodule at a dotted path such as "layer4" or "features.28" ("" is the model itself)."""
    try:
        return model.get_submodule(dotted)
    except AttributeError:
        raise ModelError(f"{type(model).__name__} has no layer '{dotted}'; the model and its registry "
                         "entry (or checkpoint) do not match") from None


def module_paths(model: nn.Module, kind: type[nn.Module] | tuple[type[nn.Module], ...]) -> list[str]:
    """Dotted paths of the submodules of a type, in module order (input side first)."""
    return [name for name, m in model.named_modules() if isinstance(m, kind)]


def last_module_path(model: nn.Module, kind: type[nn.Module], missing: str) -> str:
    """Dotted path of the last submodule of a type in module order; ModelError(`missing`) when there is none."""
    names = module_paths(model, kind)
    if not names:
        raise ModelError(missing)
    return names[-1]


def set_module(model: nn.Module, dotted: str, module: nn.Module) -> None:
    """Replace the submodule at a dotted path."""
    parent_path, _, child = dotted.rpartition(".")
    parent = get_module(model, parent_path)
    if child.isdigit() and isinstance(parent, (nn.Sequential, nn.ModuleList)):
        parent[int(child)] = module
    else:
        setattr(parent, child, module)


def group_parameters(model: nn.Module, spec: ModelSpec) -> list[tuple[str, list[nn.Parameter]]]:
    """The model's parameters split into the spec's layer groups, stem first and head last.

    Raises if a parameter belongs to no group or to two groups: that is a registry bug, and
    training with it would silently skip or double-count parameters.
    """
    owner: dict[int, str] = {}
    result: list[tuple[str, list[nn.Parameter]]] = []
    for group, paths in spec.groups:
        params: list[nn.Parameter] = []
        for path in paths:
            for p in get_module(model, path).parameters():
                if id(p) in owner:
                    if owner[id(p)] == group:
                        continue
                    raise AssertionError(f"{spec.name}: a parameter of '{path}' is in groups "
                                         f"'{owner[id(p)]}' and '{group}'")
                owner[id(p)] = group
                params.append(p)
        result.append((group, params))
    orphans = [n for n, p in model.named_parameters() if id(p) not in owner]
    if orphans:
        raise AssertionError(f"{spec.name}: parameters in no layer group: {', '.join(orphans[:5])}")
    return result


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) number of parameter values; shared parameters count once."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in the standard index order, available offline."""
    return list(imagenet_categories())
