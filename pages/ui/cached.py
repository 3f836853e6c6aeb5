"""Core calls behind Streamlit's caches: st.cache_resource for shared read-only objects (data sets, networks),
st.cache_data for pure results (overviews, evaluations, embeddings, explanations).

A run's results are keyed by `checkpoint_stamp`, so new weights in the same folder are never served stale.
torch, cvdemo.data and cvdemo.models are imported inside the functions, so the Home page starts without them.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from cvdemo.checkpoint import checkpoint_path
from cvdemo.config import RunConfig
from cvdemo.errors import CheckpointError

if TYPE_CHECKING:  # the real modules load inside the functions (torch), not with the page
    import numpy as np
    from PIL import Image

    from cvdemo.data import DataBundle
    from cvdemo.embed import Embedding
    from cvdemo.evaluate import Evaluation
    from cvdemo.explain import Explanation, Faithfulness
    from cvdemo.predict import Classifier

PRETRAINED = "pretrained:efficientnet_lite0"  # the Classify/Explain source that is not a run folder
# The Explain page's checks per map: deletion and insertion at 10 steps with 2 random maps (~60 forward
# passes), Captum's infidelity and sensitivity (~8 passes and 3 more runs of the method). ROAD is left to
# `cvdemo explain`: on a laptop CPU it adds ~2.5 s a map (measured on EfficientNet-Lite0 at 224 px), so
# eight methods would wait 20 s longer for it.
FAITHFULNESS = {"steps": 10, "insertion": True, "random_maps": 2, "road_percentiles": ()}


def checkpoint_stamp(run_dir: Path | str) -> float:
    """Modification time of the checkpoint a run answers with (cvdemo.checkpoint's rule), 0.0 when it has
    none yet: names its weights in cache keys."""
    try:
        path, _ = checkpoint_path(run_dir)
        return path.stat().st_mtime
    except (CheckpointError, OSError):
        return 0.0


# -- data and models -----------------------------------------------------------------------------

@st.cache_resource(max_entries=2, show_spinner="Loading the images…")
def load_bundle(source: str, image_size: int | None) -> DataBundle:
    """The data set (read-only, shared by all sessions); unreadable files skipped and listed."""
    from cvdemo.data import load_dataset

    return load_dataset(source, image_size=image_size, skip_bad=True)


@st.cache_data(max_entries=8, show_spinner="Counting classes and computing statistics…")
def data_overview(source: str, image_size: int | None, per_class: int = 8, max_classes: int = 30) -> dict:
    """cvdemo.data.overview.data_overview: classes, split sizes, class counts, mean/std and a few sample
    images per class (uint8 arrays)."""
    from cvdemo.data.overview import data_overview as overview

    return overview(load_bundle(source, image_size), per_class, max_classes)


@st.cache_data(max_entries=8, show_spinner="Augmenting a few images…")
def augment_preview(source: str, image_size: int | None, config: str, count: int = 6) -> dict:
    """cvdemo.augment_preview.preset_previews of the draft config (JSON in `config`): {"original", every
    augmentation preset, "yours"}, uint8 (N, C, H, W) each."""
    from cvdemo.augment_preview import preset_previews

    return preset_previews(RunConfig.from_dict(json.loads(config)), count, load_bundle(source, image_size))


@st.cache_data(max_entries=32, show_spinner="Building the network to count its parameters…")
def model_summary(config: str, num_classes: int, in_channels: int) -> dict:
    """cvdemo.train.summary.model_summary of the draft config (JSON in `config`): parameter counts (total,
    trainable at the start) and per layer group its modules, size, learning rate and when it starts to train."""
    from cvdemo.train.summary import model_summary as summary

    return summary(RunConfig.from_dict(json.loads(config)), num_classes, in_channels)


@st.cache_resource(max_entries=3, show_spinner="Loading the network…")
def load_classifier(source: str, stamp: float) -> Classifier:
    """A Classifier for a run folder (stamp: its checkpoint's mtime) or the pretrained ImageNet network."""
    from cvdemo.predict import Classifier

    if source == PRETRAINED:
        return Classifier.pretrained(PRETRAINED.split(":", 1)[1])
    return Classifier.from_run(source)


@st.cache_data(max_entries=16, show_spinner="Classifying…")
def top_k(_classifier: Classifier, _images: list[Image.Image], key: tuple, k: int) -> list[list[dict]]:
    """The classifier's k best guesses per image; `key` (network, checkpoint time, image bytes) names the inputs."""
    return _classifier.top(_images, k=k)


# -- analyses of a run ---------------------------------------------------------------------------

@st.cache_data(max_entries=8, show_spinner="Running the network over the images…")
def evaluation(run_dir: str, split: str, stamp: float) -> Evaluation:
    """cvdemo.evaluate.evaluate_run of a run on a split (stamp: its checkpoint's mtime)."""
    from cvdemo.evaluate import evaluate_run

    return evaluate_run(run_dir, split, most_wrong=24)


@st.cache_data(max_entries=64, show_spinner=False)
def split_images(run_dir: str, split: str, indices: tuple[int, ...]) -> np.ndarray:
    """uint8 (n, C, H, W) numpy images of some samples of a run's split."""
    from cvdemo.evaluate import sample_images

    return sample_images(run_dir, split, list(indices)).numpy()


@st.cache_data(max_entries=12, show_spinner=False)
def embedding(run_dir: str, stamp: float, method: str, dims: int, layer: str | None, limit: int | None,
              backbone: str = "run") -> Embedding:
    """cvdemo.embed.embed_run of a run's test split (stamp: its checkpoint's mtime)."""
    from cvdemo.embed import embed_run

    return embed_run(run_dir, method=method, dims=dims, layer=layer, limit=limit, backbone=backbone)


@st.cache_resource
def model_lock() -> threading.Lock:
    """One lock for explanations: they put hooks on (and freeze) a network that all sessions share."""
    return threading.Lock()


@st.cache_data(max_entries=64, show_spinner=False)
def explanation(_classifier: Classifier, key: tuple, _image: Image.Image, method: str, target: int | None,
                arch: str) -> Explanation:
    """A method's map for one image (`key`: network, checkpoint time, image digest name the inputs)."""
    from cvdemo.explain import explain_image

    with model_lock():
        return explain_image(_classifier, _image, method, target, arch=arch)


@st.cache_data(max_entries=64, show_spinner=False)
def checks(_classifier: Classifier, key: tuple, _image: Image.Image, method: str, target: int | None,
           arch: str) -> Faithfulness:
    """The checks of `explanation`'s map (cvdemo.explain.faithfulness with FAITHFULNESS): about 70 forward
    passes, many times the map's own cost, so the page draws every map first and its checks after."""
    from cvdemo.explain import faithfulness

    exp = explanation(_classifier, key, _image, method, target, arch)
    with model_lock():
        return faithfulness(_classifier.model, _classifier.to_input(_image), exp, **FAITHFULNESS)


@st.cache_data(max_entries=16, show_spinner=False)
def randomization(_classifier: Classifier, key: tuple, _image: Image.Image, method: str, target: int | None,
                  arch: str) -> dict:
    """The model-randomisation check of one method on one image (cvdemo.explain.randomization_check):
    {"spearman", "trained", "randomized"}; the layer and head are the architecture's (as `explanation`)."""
    from cvdemo.explain import explain_image, randomization_check

    with model_lock():
        options = explain_image(_classifier, _image, method, target, arch=arch).options
        return dict(randomization_check(_classifier.model, _classifier.to_input(_image), method, target, **options))


@st.cache_data(max_entries=16, show_spinner=False)
def feature_maps_of(_classifier: Classifier, key: tuple, _image: Image.Image, layer: str | None) -> np.ndarray:
    """cvdemo.filters.feature_maps of one image (`key` names network, checkpoint time and image): float (C, h, w)."""
    from cvdemo.filters import feature_maps

    with model_lock():
        return feature_maps(_classifier.model, _classifier.to_input(_image), layer)[1]
