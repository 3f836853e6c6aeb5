"""The data layer: data sets, decoding, splits, batches and model input.

    bundle = load_dataset("digits")            # or mnist, cifar10, ..., a folder, a .zip
    mean, std = compute_mean_std(bundle.train)
    for x, y in make_loader(bundle.train, batch_size=64, shuffle=True, augment="standard"):
        inputs = to_model_input(x.to(device), size=32, mean=mean, std=std, channels=3)

Images travel as uint8 (B, C, H, W) at their stored size; `to_model_input` resizes and
normalises a whole batch at once, on the model's device. Importing this package is cheap:
torchvision is imported only by the functions that use it, scikit-learn never.
"""

from cvdemo.data.builtin import SOURCES
from cvdemo.data.dataset import load_dataset
from cvdemo.data.decode import decode_image
from cvdemo.data.imageset import DataBundle, ImageSet
from cvdemo.data.loader import AUGMENT_PRESETS, make_loader, train_transform
from cvdemo.data.preprocess import compute_mean_std, prepare_image, to_model_input
from cvdemo.data.split import stratified_split, stratified_subset

__all__ = [
    "AUGMENT_PRESETS",
    "SOURCES",
    "DataBundle",
    "ImageSet",
    "compute_mean_std",
    "decode_image",
    "load_dataset",
    "make_loader",
    "prepare_image",
    "stratified_split",
    "stratified_subset",
    "to_model_input",
    "train_transform",
]
