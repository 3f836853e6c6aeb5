"""Model registry: every architecture cvdemo can train, with the facts needed to train it.

    >>> from cvdemo.models import create_model, get_spec
    >>> model = create_model("resnet18", num_classes=10)
    >>> get_spec("resnet18").groups[0]
    ('stem', ('conv1', 'bn1'))

Importing this package is cheap: torchvision is imported only by builders that need it.
"""

import importlib

from cvdemo.models.registry import (
    ModelSpec,
    count_parameters,
    create_model,
    get_module,
    get_spec,
    group_parameters,
    imagenet_classes,
    last_module_path,
    list_models,
    module_paths,
    pretrained_offline,
    register_model,
)

# Importing a family module registers its models; this order is the order of list_models().
_FAMILY_MODULES = ("lenet", "cifar_resnet", "alexnet", "vgg", "googlenet", "resnet", "mobilenet", "efficientnet")
for _module in _FAMILY_MODULES:
    importlib.import_module(f"cvdemo.models.{_module}")

__all__ = [
    "ModelSpec",
    "count_parameters",
    "create_model",
    "get_module",
    "last_module_path",
    "module_paths",
    "get_spec",
    "group_parameters",
    "imagenet_classes",
    "list_models",
    "pretrained_offline",
    "register_model",
]
