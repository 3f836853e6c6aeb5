"""Core calls behind Streamlit's caches: st.cache_resource for shared read-only objects (data sets, networks),
st.cache_data for pure results (overviews, evaluations, embeddings, explanations).

A run's results are keyed by `checkpoint_stamp`, so new weights in the same folder are never served stale.
torch, cvdemo.data and cvdemo.models are imported inside the functions, so the Home page starts without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from cvdemo.checkpoint import checkpoint_path
from cvdemo.config import RunConfig
from cvdemo.errors import CheckpointError

PRETRAINED = "pretrained:efficientnet_lite0"  # the Classify/Explain source that is not a run folder
# The Explain page's deletion and insertion checks: 10 steps and 2 random maps keep them to ~60 forward
# passes a map on a laptop.
FAITHFULNESS = {"steps": 10, "insertion": True, "random_maps": 2}


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
def load_bundle(source: str, image_size: int | None) -> Any:
    """The data set (read-only, shared by all sessions); unreadable files skipped and listed."""
    from cvdemo.data import load_dataset

    return load_dataset(source, image_size=image_size, skip_bad=True)


@st.cache_data(max_entries=8, show_spinner="Counting classes and computing statistics…")
def data_overview(source: str, image_size: int | None, per_class: int = 8, max_classes: int = 30) -> dict:
    """Classes, split sizes, class counts, mean/std and a few sample images per class (uint8 arrays)."""
    import numpy as np

    from cvdemo.data import compute_mean_std

    b = load_bundle(source, image_size)
    n = len(b.classes)
    samples = {}
    labels = b.train.labels.numpy()
    for c in range(min(n, max_classes)):
        idx = np.flatnonzero(labels == c)[:per_class]
        if len(idx):
            samples[b.classes[c]] = np.stack([b.train[int(i)][0].numpy() for i in idx])
    mean, std = compute_mean_std(b.train)
    return {"name": b.name, "classes": list(b.classes), "channels": b.channels,
            "sizes": {s: len(getattr(b, s)) for s in ("train", "val", "test")},
            "counts": {s: getattr(b, s).class_counts(n) for s in ("train", "val", "test")},
            "mean": mean, "std": std, "samples": samples, "skipped": list(b.skipped),
            "image_size": b.train.image_size()}


@st.cache_data(max_entries=8, show_spinner="Augmenting a few images…")
def augment_preview(source: str, image_size: int | None, config: str, count: int = 6) -> dict:
    """{"original": uint8 (N, C, H, W), preset: the same images after that augmentation preset,
    "yours": as the draft config (JSON in `config`) trains on them, mixup and cutmix included}."""
    import torch

    from cvdemo.augment_preview import augmented_samples
    from cvdemo.data import AUGMENT_PRESETS

    bundle = load_bundle(source, image_size)
    base = RunConfig.from_dict(json.loads(config))
    out = {}
    with torch.random.fork_rng(devices=[]):  # the preview's seeding leaves the server's generator alone
        for preset in AUGMENT_PRESETS:
            before, after = augmented_samples(base.replace(data={"augment": preset}, train={"mixup": 0.0,
                                                                                          "cutmix": 0.0}),
                                              count, bundle=bundle)
            out["original"], out[preset] = before.numpy(), after.numpy()
        out["yours"] = augmented_samples(base, count, bundle=bundle)[1].numpy()
    return out


@st.cache_data(max_entries=32, show_spinner="Building the network to count its parameters…")
def model_summary(config: str, num_classes: int, in_channels: int) -> dict:
    """Parameter counts (total, trainable at the start) and the layer-group plan of the draft config
    (JSON in `config`): per group its modules, size, learning rate and when it starts to train.
    The model is built on the meta device: shapes only, no memory and no time, even for VGG."""
    import torch

    from cvdemo.models import create_model, get_spec
    from cvdemo.train.groups import apply_freezing, group_table, plan_groups

    run_config = RunConfig.from_dict(json.loads(config))
    spec = get_spec(run_config.model.name)
    with torch.device("meta"):
        model = create_model(spec.name, num_classes, in_channels=in_channels if spec.flexible_channels else 3)
    groups = plan_groups(model, run_config)
    apply_freezing(groups, 1)
    paths = dict(spec.groups)
    rows = [{"group": row["group"], "modules": ", ".join(paths[row["group"]]), "parameters": row["params"],
             "learning rate": row["lr"],
             "trains": "from the start" if row["trains_from_epoch"] == 1 else
             "frozen" if row["trains_from_epoch"] is None else f"from epoch {row['trains_from_epoch']}"}
            for row in group_table(groups, run_config.train.lr)]
    total = sum(g.size for g in groups)
    trainable = sum(g.size for g in groups if g.trains_in(1))
    return {"total": total, "trainable": trainable, "groups": rows}


@st.cache_resource(max_entries=3, show_spinner="Loading the network…")
def load_classifier(source: str, stamp: float) -> Any:
    """A Classifier for a run folder (stamp: its checkpoint's mtime) or the pretrained ImageNet network."""
    from cvdemo.predict import Classifier

    if source == PRETRAINED:
        return Classifier.pretrained(PRETRAINED.split(":", 1)[1])
    return Classifier.from_run(source)


@st.cache_data(max_entries=16, show_spinner="Classifying…")
def top_k(_classifier: Any, _images: list[Any], key: tuple, k: int) -> list[list[dict]]:
    """The classifier's k best guesses per image; `key` (network, checkpoint time, image bytes) names the inputs."""
    return _classifier.top(_images, k=k)


# -- analyses of a run ---------------------------------------------------------------------------

@st.cache_data(max_entries=8, show_spinner="Running the network over the images…")
def evaluation(run_dir: str, split: str, stamp: float) -> Any:
    """cvdemo.evaluate.evaluate_run of a run on a split (stamp: its checkpoint's mtime)."""
    from cvdemo.evaluate import evaluate_run

    return evaluate_run(run_dir, split, most_wrong=24)


@st.cache_data(max_entries=64, show_spinner=False)
def split_images(run_dir: str, split: str, indices: tuple[int, ...]) -> Any:
    """uint8 (n, C, H, W) numpy images of some samples of a run's split."""
    from cvdemo.evaluate import sample_images

    return sample_images(run_dir, split, list(indices)).numpy()


@st.cache_data(max_entries=12, show_spinner=False)
def embedding(run_dir: str, stamp: float, method: str, dims: int, layer: str | None, limit: int | None,
              backbone: str = "run") -> Any:
    """cvdemo.embed.embed_run of a run's test split (stamp: its checkpoint's mtime)."""
    from cvdemo.embed import embed_run

    return embed_run(run_dir, method=method, dims=dims, layer=layer, limit=limit, backbone=backbone)


@st.cache_resource
def model_lock() -> Any:
    """One lock for explanations: they put hooks on (and freeze) a network that all sessions share."""
    import threading

    return threading.Lock()


@st.cache_data(max_entries=64, show_spinner=False)
def explanation(_classifier: Any, key: tuple, _image: Any, method: str, target: int | None, arch: str) -> dict:
    """A method's map for one image (`key`: network, checkpoint time, image digest name the inputs) and
    its deletion and insertion scores against random maps as smooth as it (cvdemo.explain.faithfulness)."""
    from cvdemo.explain import explain_image, faithfulness

    with model_lock():
        exp = explain_image(_classifier, _image, method, target, arch=arch)
        f = faithfulness(_classifier.model, _classifier.to_input(_image), exp, **FAITHFULNESS)
    return {"explanation": exp, "faithfulness": f}


@st.cache_data(max_entries=16, show_spinner=False)
def feature_maps_of(_classifier: Any, key: tuple, _image: Any, layer: str | None) -> Any:
    """cvdemo.filters.feature_maps of one image (`key` names network, checkpoint time and image): float (C, h, w)."""
    from cvdemo.filters import feature_maps

    with model_lock():
        return feature_maps(_classifier.model, _classifier.to_input(_image), layer)[1]
