"""Helpers shared by the pages: session-state keys, the draft run config, caches, run display, charts.

Pages stay thin: they read widgets, call cvdemo, draw. No training or metric logic here.
torch, cvdemo.data, cvdemo.models and altair are imported inside the functions that need them,
so the Home page starts without them.
"""

from __future__ import annotations

import copy
import hashlib
import re
import shutil
import time
from pathlib import Path
from typing import Any

import streamlit as st

from cvdemo import limits, runs
from cvdemo.config import RunConfig, field_infos
from cvdemo.errors import CvdemoError

# -- every st.session_state key the app uses, defined once ---------------------------------------
KEY_SELECTED_RUN = "selected_run"      # run id picked on the Runs page (for download / delete)
KEY_DRAFT = "draft_config"             # dict: the RunConfig that Home, Data and Model fill in and Train starts from
KEY_DATA_INFO = "data_info"            # {"source", "label", "classes", "channels"} of the last data that loaded
KEY_FLASH = "flash_message"            # one message to show after a st.rerun()
KEY_LESSON_START = "lesson_start:"     # + lesson title: Home's one-click buttons
KEY_LESSON_EDIT = "lesson_edit:"       # + lesson title: "change settings first" buttons
KEY_RECIPE = "recipe"                  # Home: the report recipe picked
KEY_RECIPE_OPEN = "recipe_open"
KEY_WATCH_RUN = "watch_run"            # Train page: the run whose curves are shown
KEY_FORM = "form:"                     # + "train.lr": the Train form's widgets
KEY_TRAIN_FORM = "train_form"
KEY_TRAIN_START = "train_start"
KEY_TRAIN_CANCEL = "train_cancel"
KEY_DATA_KIND = "data_kind"            # Data page: where the images come from
KEY_DATA_TORCHVISION = "data_torchvision"
KEY_DATA_LOAD = "data_load"
KEY_DATA_ZIP = "data_zip"
KEY_DATA_IMAGES = "data_images"
KEY_DATA_CLASS = "data_class:"         # + index: class name typed for an uploaded image
KEY_DATA_MAKE = "data_make"
KEY_DATA_FOLDER = "data_folder"
KEY_MODEL_NAME = "model_name"
KEY_MODEL_PRETRAINED = "model_pretrained"
KEY_MODEL_FREEZE = "model_freeze"
KEY_COMPARE = "compare_runs"
KEY_COMPARE_CSV = "compare_csv"
KEY_SCATTER_X = "scatter_x"
KEY_DELETE_CONFIRM = "delete_confirm"
KEY_DELETE = "delete_run"
KEY_DOWNLOAD = "download_best"
KEY_CLASSIFY_WITH = "classify_with"
KEY_CLASSIFY_FILES = "classify_files"
KEY_CLASSIFY_TOPK = "classify_topk"
KEY_CLASSIFY_CSV = "classify_csv"

UPLOADS = "uploads"                    # folder under the runs root for uploaded data (never a run)
MAX_ZIP_MB = limits.max_zip_mb()        # $CVDEMO_MAX_ZIP_MB (see cvdemo/limits.py)
MAX_IMAGE_MB = limits.max_image_mb()    # $CVDEMO_MAX_IMAGE_MB
PRETRAINED = "pretrained:efficientnet_lite0"

# Material icons ship with Streamlit, so they show on a laptop with no emoji font too.
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/directions_run:",
               "completed": ":material/check_circle:", "diverged": ":material/trending_up:",
               "cancelled": ":material/stop_circle:", "failed": ":material/error:", "interrupted": ":material/bolt:"}

# One-click lessons: title -> (what to look at, the recipe it starts from, changes to that recipe).
LESSONS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "Digits with LeNet": (
        "LeNet-5 on the 8×8 handwritten digits that ship with scikit-learn: about 97% test accuracy "
        "in well under a minute. Watch the loss fall and the accuracy climb epoch by epoch.", "lenet-digits", {}),
    "Digits with a small ResNet": (
        "A ResNet-9-style network with residual blocks and batch norm on the same digits, 3 epochs. "
        "A hundred times more parameters than LeNet: compare speed and accuracy on the Runs page.", "lenet-digits",
        {"model": {"name": "cifar_resnet"}, "data": {"image_size": 32}, "train": {"epochs": 3},
         "name": "digits-small-resnet"}),
}


def _use_the_router() -> None:
    """Streamlit runs a folder named pages/ beside the entry script as old-style pages until the entry
    script has called st.navigation once in this server process: a browser whose first request is
    /train on a fresh server would get that page without the router, the wide layout or the sidebar
    sections. Leave that mode and rerun, so that streamlit_app.py routes the request."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - a Streamlit without the old mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


_use_the_router()


def runs_root() -> Path:
    return runs.default_root()


def plain(text: str) -> str:
    """Text shown as written: st.error and friends read Markdown, which would turn `cats/*.jpg and
    dogs/*.jpg` into italics and a class named `<b>` into markup."""
    return re.sub(r"([\\`*_{}\[\]<>#|~$])", r"\\\1", str(text))


def show_error(error: CvdemoError) -> None:
    """A user-facing error as one readable sentence on the page."""
    st.error(plain(error), icon=":material/warning:")


def flash(message: str | None = None) -> None:
    """With a message: keep it for the next run. Without: show the kept message once."""
    if message is not None:
        st.session_state[KEY_FLASH] = message
    elif KEY_FLASH in st.session_state:
        st.success(st.session_state.pop(KEY_FLASH), icon=":material/check:")


# -- the draft config shared by Home, Data, Model and Train --------------------------------------

def draft() -> dict[str, Any]:
    """A copy of the run config the Train form starts from (a plain dict, as RunConfig.to_dict gives)."""
    if KEY_DRAFT not in st.session_state:
        st.session_state[KEY_DRAFT] = RunConfig().to_dict()
    return copy.deepcopy(st.session_state[KEY_DRAFT])


def update_draft(**sections: dict[str, Any]) -> None:
    """Change some fields of the draft: `update_draft(data={"source": "mnist"})`."""
    raw = draft()
    for section, values in sections.items():
        raw[section].update(values)
    st.session_state[KEY_DRAFT] = raw


def lesson_config(title: str) -> RunConfig:
    from cvdemo.recipes import load_recipe

    _, recipe, changes = LESSONS[title]
    return load_recipe(recipe).config.replace(**changes)


def freeze_choices(model_name: str) -> dict[str, str]:
    """What `model.freeze` can be for a model -> words for it: nothing, the groups up to one of them,
    or everything but the head."""
    from cvdemo.models import get_spec

    groups = [g for g, _ in get_spec(model_name).groups]
    return {"none": "nothing: every layer learns",
            **{f"until:{g}": f"the layers up to {g}" for g in groups[:-2]},
            "backbone": "everything but the new head"}


# -- runs ---------------------------------------------------------------------------------------

def runs_table(found: list[runs.RunInfo]) -> list[dict]:
    """Rows for st.dataframe: one per run."""
    return [{"run": r.id, "state": r.state, "model": r.model, "data": r.data,
             "epochs": f"{r.epochs_done}/{r.epochs}",
             "val top-1": r.best_val_top1, "test top-1": r.test_top1, "message": r.message} for r in found]


PERCENT_COLUMNS = {name: st.column_config.NumberColumn(format="percent")
                   for name in ("val top-1", "best val top-1", "test top-1", "test top-2", "test top-5")}


def run_label(r: runs.RunInfo) -> str:
    """Short text for a run in a picker: model, data, start time (not the state: a picker's text
    does not refresh while its run trains)."""
    started = time.strftime("%H:%M:%S", time.localtime(r.created)) if r.created else "?"
    data = Path(r.data).name if ("/" in r.data or "\\" in r.data) else r.data
    return f"{r.model} on {data} · started {started} · {r.id[-4:]}"


def short_name(r: runs.RunInfo) -> str:
    """A few characters naming a run in chart legends and comparison tables."""
    return f"{r.model} · {r.id[-4:]}"


def read_summary(run_dir: Path) -> dict[str, Any]:
    return runs.read_json_or_empty(Path(run_dir) / "summary.json")


def run_config(run_dir: Path) -> dict[str, Any]:
    return runs.read_json_or_empty(Path(run_dir) / "config.json")


def flat_config(run_dir: Path) -> dict[str, Any]:
    """{"train.lr": 0.003, ...}: every setting of a run, lists as text."""
    return {f"{section}.{k}": (", ".join(map(str, v)) if isinstance(v, list) else v)
            for section, values in run_config(run_dir).items() if isinstance(values, dict)
            for k, v in values.items()}


def result_rows(found: list[runs.RunInfo]) -> list[dict[str, Any]]:
    """A comparison table (cvdemo.compare's: test top-1/2/5, macro-F1, parameters, seconds) with the
    settings people vary most, one row per run."""
    from cvdemo.compare import comparison_rows

    names = {"top1": "test top-1", "top2": "test top-2", "top5": "test top-5", "macro_f1": "test macro-F1",
             "params": "parameters", "status": "state"}
    rows = []
    for r, row in zip(found, comparison_rows([r.path for r in found])):
        config = run_config(r.path)
        train = config.get("train", {})
        rows.append({"run": short_name(r), **{names.get(k, k): v for k, v in row.items() if k != "run"},
                     "pretrained": config.get("model", {}).get("pretrained"), "epochs": r.epochs_done,
                     "lr": train.get("lr"), "batch size": train.get("batch_size"),
                     "optimizer": train.get("optimizer"), "augment": config.get("data", {}).get("augment"),
                     "best val top-1": r.best_val_top1})
    return rows


def progress(r: runs.RunInfo, metrics: list[dict]) -> dict[str, Any]:
    """How far a run is: fraction of its epochs (within an epoch too, from the step records), epochs
    finished, seconds left (None until training has started) and the last epoch's images per second."""
    epochs = [m for m in metrics if m.get("kind") == "epoch"]
    steps = [m for m in metrics if m.get("kind") == "step"]
    total = max(r.epochs, 1)
    points = [(m["epoch"], m["time"]) for m in steps + epochs if "time" in m and "epoch" in m]
    points.sort()
    at = points[-1][0] if points else 0.0
    eta = None
    if len(points) >= 2 and r.state in ("queued", "running") and points[-1][0] > points[0][0]:
        per_epoch = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
        eta = max(0.0, per_epoch * (total - at) - (time.time() - points[-1][1]))
    speed = epochs[-1].get("images_per_s") if epochs else None
    return {"fraction": min(at / total, 1.0), "done": len(epochs), "total": total, "eta": eta, "images_per_s": speed}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def show_run_state(r: runs.RunInfo) -> None:
    """The run's state in words: why it diverged, why it failed, or how it finished."""
    if r.state == "completed":
        st.success(f"Finished: {r.message}.", icon=STATE_ICONS["completed"])
    elif r.state == "diverged":
        st.error(f"The training diverged: {r.message}. The loss blew up to a value no further step can "
                 "recover from — this is what a learning rate that is too high does.", icon=STATE_ICONS["diverged"])
    elif r.state == "failed":
        st.error(f"The run failed: {r.message}", icon=STATE_ICONS["failed"])
    elif r.state == "cancelled":
        st.warning("The run was cancelled; its last finished epoch is saved.", icon=STATE_ICONS["cancelled"])
    elif r.state == "interrupted":
        st.warning(r.message, icon=STATE_ICONS["interrupted"])
    else:
        st.info(f"{r.state.capitalize()}: {r.message or 'starting'}", icon=STATE_ICONS.get(r.state))


def delete_run(run_dir: Path) -> None:
    """Remove a finished run folder; only a direct child of the runs root that holds a run."""
    root = runs_root().resolve()
    path = Path(run_dir)
    if path.is_symlink() or path.resolve().parent != root or not (path / "config.json").is_file():
        raise CvdemoError(f"{path} is not a run folder under {root}; nothing was deleted")
    if runs.read_status(path).get("state") in ("queued", "running"):
        raise CvdemoError(f"run {path.name} is still running: cancel it first, then delete it")
    shutil.rmtree(path)


# -- uploads ------------------------------------------------------------------------------------

def uploads_dir() -> Path:
    folder = runs_root() / UPLOADS
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CvdemoError(f"cannot create the uploads folder {folder}: {e.strerror or e}") from None
    return folder


def check_size(name: str, data: bytes, limit_mb: int) -> None:
    if len(data) > limit_mb * 2**20:
        raise CvdemoError(f"{name} is {len(data) / 2**20:.0f} MB, more than the {limit_mb} MB allowed here")


def save_zip(data: bytes) -> Path:
    """Store an uploaded zip under uploads/ with a name made from its contents (never the user's name)."""
    check_size("the zip file", data, MAX_ZIP_MB)
    path = uploads_dir() / f"upload-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    if not path.exists():
        runs.write_atomic(path, data)
    return path


def safe_class_name(text: str) -> str:
    """A class name usable as a folder name: letters, digits, space, - and _ only."""
    name = "".join(c for c in text.strip() if c.isalnum() or c in " -_").strip()
    if not name:
        raise CvdemoError(f"class name {text!r} is empty or has no letters or digits: give every image a class")
    return name[:60]


def save_labelled_images(items: list[tuple[str, str, bytes]]) -> Path:
    """(class name, file name, bytes) -> an image folder `uploads/images-<hash>/<class>/<n>-<name>.<ext>`."""
    from cvdemo.data.folder import IMAGE_EXTENSIONS

    digest = hashlib.sha256()
    entries = []
    for i, (label, name, data) in enumerate(items):
        check_size(name, data, MAX_IMAGE_MB)
        label = safe_class_name(label)
        suffix = Path(name).suffix.lower()
        stem = "".join(c for c in Path(name).stem if c.isalnum() or c in "-_")[:40] or "image"
        entries.append((label, f"{i:04d}-{stem}{suffix if suffix in IMAGE_EXTENSIONS else '.png'}", data))
        digest.update(f"{label}\0{name}\0".encode() + hashlib.sha256(data).digest())
    if len({e[0] for e in entries}) < 2:
        raise CvdemoError("a classifier needs at least two classes: give the images at least two class names")
    folder = uploads_dir() / f"images-{digest.hexdigest()[:16]}"
    if folder.is_dir():
        return folder
    tmp = folder.with_name(folder.name + f".tmp{time.time_ns()}")
    for label, fname, data in entries:
        (tmp / label).mkdir(parents=True, exist_ok=True)
        (tmp / label / fname).write_bytes(data)
    tmp.rename(folder)
    return folder


# -- caches -------------------------------------------------------------------------------------

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
    base = RunConfig.from_dict(__import__("json").loads(config))
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

    run_config = RunConfig.from_dict(__import__("json").loads(config))
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


# -- drawing ------------------------------------------------------------------------------------

def tile(images: Any, columns: int | None = None, min_side: int = 72, gap: int = 6) -> Any:
    """uint8 (N, C, H, W) -> one image with the N images in a grid (`columns` wide; default one row) on
    white, tiny images enlarged by pixel repetition (nearest) so 8x8 digits stay sharp on a projector.
    Returns (H', W') for grey and (H', W', 3) for colour images."""
    import numpy as np

    images = np.asarray(images)
    n, c, h, w = images.shape
    columns = max(1, min(columns or n, n))
    rows = -(-n // columns)
    k = max(1, -(-min_side // max(h, w)))
    big = images.repeat(k, axis=2).repeat(k, axis=3)
    hk, wk = h * k, w * k
    canvas = np.full((c, rows * (hk + gap) - gap, columns * (wk + gap) - gap), 255, dtype=np.uint8)
    for i in range(n):
        y, x = divmod(i, columns)
        canvas[:, y * (hk + gap): y * (hk + gap) + hk, x * (wk + gap): x * (wk + gap) + wk] = big[i]
    return canvas[0] if c == 1 else canvas.transpose(1, 2, 0)


def curves_frame(metrics_by_run: dict[str, list[dict]]) -> Any:
    """Long table (run, epoch, metric, split, value) of some runs' metric records. Training loss and
    learning rate come from the step records (several points per epoch) when the run has them;
    `epoch` is fractional there (1.0 = the end of the first epoch, where its epoch record sits)."""
    import pandas as pd

    rows = []
    for run, records in metrics_by_run.items():
        has_steps = any(m.get("kind") == "step" for m in records)
        for m in records:
            if m.get("kind") == "step":
                pairs = (("loss", "loss", "train"), ("lr", "learning rate", "train"))
            elif m.get("kind") == "epoch":
                pairs = (("val_loss", "loss", "validation"), ("train_top1", "top-1 accuracy", "train"),
                         ("val_top1", "top-1 accuracy", "validation"))
                if not has_steps:
                    pairs += (("train_loss", "loss", "train"), ("lr", "learning rate", "train"))
            else:
                continue
            for key, metric, split in pairs:
                if m.get(key) is not None:
                    rows.append({"run": run, "epoch": m["epoch"], "metric": metric, "split": split,
                                 "value": m[key]})
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "split", "value"])


def curve_chart(frame: Any, metric: str, *, epochs: int | None = None, by_run: bool = False,
                height: int = 260) -> Any:
    """An Altair line chart of one metric against epoch: train/validation as colours (one run) or
    runs as colours and splits as dashes (several runs). Legends sit on the right: Streamlit's theme
    pads a title or a top legend generously, out of the plot's `height`."""
    import altair as alt

    data = frame[frame["metric"] == metric]
    y_axis = alt.Axis(format="%" if "accuracy" in metric else "~g", title=metric)
    x_scale = alt.Scale(domain=[0, epochs]) if epochs else alt.Scale(domainMin=0)
    base = alt.Chart(data, height=height).encode(
        x=alt.X("epoch:Q", title="epoch", scale=x_scale, axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("value:Q", scale=alt.Scale(zero=metric == "learning rate"), axis=y_axis),
        color=alt.Color("run:N" if by_run else "split:N", title=None, legend=alt.Legend(orient="right")),
        tooltip=["run", "epoch", "split", alt.Tooltip("value:Q", format=".4g")])
    if by_run:
        base = base.encode(strokeDash=alt.StrokeDash("split:N", title=None, legend=alt.Legend(orient="right")))
    few = data.groupby(["run", "split"])["epoch"].count().max() <= 30 if len(data) else True
    return base.mark_line(point=alt.OverlayMarkDef(size=60) if few else False, strokeWidth=3)


def draw_curve(frame: Any, metric: str, **options: Any) -> None:
    """A bold heading and the chart of one metric (see curve_chart)."""
    st.markdown(f"**{metric.capitalize()}**")
    st.altair_chart(curve_chart(frame, metric, **options), width="stretch")


# -- the config form ----------------------------------------------------------------------------

def form_key(section: str, name: str) -> str:
    return f"{KEY_FORM}{section}.{name}" if section else f"{KEY_FORM}{name}"


def _float_step(value: float, info: Any) -> float:
    import math

    if value and value > 0:
        return 10.0 ** math.floor(math.log10(value))
    return 0.01 if (info.max or 1) <= 1 else 0.1


def field_widget(section: str, info: Any, value: Any, choices: list[str] | None = None) -> Any:
    """One widget for one config field, chosen from its kind and metadata (help, range, choices).

    Returns a raw value for RunConfig.from_dict (which validates it): lists as comma-separated text.
    """
    key, label, help_text = form_key(section, info.name), info.name.replace("_", " "), info.help or None
    options = list(choices or info.choices or [])
    if info.kind == "bool":
        return st.checkbox(label, value=bool(value), key=key, help=help_text)
    if options:
        if value not in options:
            options = [value, *options]
        return st.selectbox(label, options, index=options.index(value), key=key, help=help_text)
    if info.kind in ("int", "float"):
        is_int = info.kind == "int"
        cast = int if is_int else float
        bounds = {"min_value": cast(info.min) if info.min is not None else None,
                  "max_value": cast(info.max) if info.max is not None else None}
        step = 1 if is_int else _float_step(value, info)
        return st.number_input(label, value=None if value is None else cast(value), step=step, key=key,
                               help=help_text, format=None if is_int else "%g",
                               placeholder="automatic" if info.optional else None, **bounds)
    if info.kind == "list":
        text = ", ".join(str(v) for v in value or ())
        return st.text_input(label, text, key=key, help=f"{help_text or ''} (comma-separated)", placeholder="none")
    text = st.text_input(label, value or "", key=key, help=help_text,
                         placeholder="optional" if info.optional else None)
    return (text.strip() or None) if info.optional else text


def config_section(section: str, cls: type, values: dict, *, primary: tuple[str, ...],
                   choices: dict[str, list[str]] | None = None) -> dict:
    """Widgets for every field of a config dataclass: the `primary` ones in view, the rest in an expander
    (so fields the core adds later appear without touching the page). Returns {field: raw value}."""
    infos = field_infos(cls)
    choices = choices or {}
    out = {}
    for group in ([f for f in infos if f.name in primary], [f for f in infos if f.name not in primary]):
        if not group:
            continue
        box = st.container() if group[0].name in primary else st.expander(f"More {section} settings")
        with box:
            cols = st.columns(2)
            for i, info in enumerate(group):
                with cols[i % 2]:
                    out[info.name] = field_widget(section, info, values.get(info.name, info.default),
                                                  choices.get(info.name))
    return out


# -- the Understand pages: Evaluate, Embeddings, Explain ------------------------------------------

KEY_EVAL_RUN = "eval_run"
KEY_EVAL_SPLIT = "eval_split"
KEY_EVAL_MATRIX = "eval_matrix:"       # + run id + ":" + split: the confusion-matrix chart (its state = clicked cell)
KEY_EMBED_RUN = "embed_run"
KEY_EMBED_METHOD = "embed_method"
KEY_EMBED_DIMS = "embed_dims"
KEY_EMBED_LAYER = "embed_layer"
KEY_EMBED_LIMIT = "embed_limit"
KEY_EMBED_SCATTER = "embed_scatter:"   # + the picture's settings: the 2-D scatter (its state = the box drawn)
KEY_EXPLAIN_WITH = "explain_with"
KEY_EXPLAIN_INPUT = "explain_input"
KEY_EXPLAIN_UPLOAD = "explain_upload"
KEY_EXPLAIN_CAMERA = "explain_camera"
KEY_EXPLAIN_PICK = "explain_pick"
KEY_EXPLAIN_TARGET = "explain_target"
KEY_EXPLAIN_METHODS = "explain_methods"
KEY_EXPLAIN_ALPHA = "explain_alpha"
KEY_EXPLAIN_MAPS_LAYER = "explain_maps_layer"

SELECT_CELL = "cell"                   # names of the chart selections the pages read back
SELECT_BOX = "box"
# The Explain page's deletion and insertion checks: 10 steps and 2 random maps keep them to ~60 forward
# passes a map on a laptop.
FAITHFULNESS = {"steps": 10, "insertion": True, "random_maps": 2}


def trained_runs() -> list[runs.RunInfo]:
    """Runs with a checkpoint to analyse (finished, or past their first epoch), newest first."""
    return [r for r in runs.list_runs(runs_root())
            if (r.path / "best.pt").is_file() or (r.path / "last.pt").is_file()]


def no_trained_runs() -> None:
    st.info("No trained run yet. Press **Start** on the *Digits with LeNet* lesson on Home (it trains in under a "
            "minute), or set up a run on Train; it shows up here once it has finished an epoch.",
            icon=":material/info:")


def run_picker(found: list[runs.RunInfo], key: str, label: str = "Run") -> runs.RunInfo:
    """A selectbox of runs (the newest completed one first time round); returns the chosen run."""
    by_id = {r.id: r for r in found}
    if st.session_state.get(key) not in by_id:
        done = [r for r in found if r.state == "completed"]
        st.session_state[key] = (done or found)[0].id

    def name(run_id: str) -> str:
        r = by_id[run_id]
        score = f"test top-1 {r.test_top1:.1%}" if r.test_top1 is not None else r.state
        return f"{run_label(r)} · {score}"

    return by_id[st.selectbox(label, list(by_id), format_func=name, key=key)]


def checkpoint_stamp(run_dir: Path) -> float:
    """Modification time of the checkpoint an analysis reads (best.pt, else last.pt): names its weights in caches."""
    for name in ("best.pt", "last.pt"):
        path = Path(run_dir) / name
        if path.is_file():
            return path.stat().st_mtime
    return 0.0


def show_failure(error: Exception, doing: str) -> None:
    """Any failure as one sentence: a CvdemoError as it is, anything else as what was being done and why."""
    if isinstance(error, CvdemoError):
        show_error(error)
    else:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        show_error(CvdemoError(f"{doing} failed: {reason}"))


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


def enlarge(image: Any, side: int) -> Any:
    """uint8 (C, H, W) -> (H', W') grey or (H', W', 3) colour, pixels repeated (nearest) until the long
    side reaches about `side`: 8x8 digits stay crisp squares instead of a blur."""
    import numpy as np

    image = np.asarray(image)
    k = max(1, round(side / max(image.shape[1:])))
    big = image.repeat(k, axis=1).repeat(k, axis=2)
    return big[0] if big.shape[0] == 1 else big[:3].transpose(1, 2, 0)


@st.cache_data(max_entries=16, show_spinner=False)
def thumbnails(run_dir: str, split: str, indices: tuple[int, ...], side: int = 72) -> list[str]:
    """Small PNG data URLs of some samples of a split, for chart tooltips (a field named "image")."""
    import base64
    import io

    from PIL import Image

    urls = []
    for image in split_images(run_dir, split, indices):
        buf = io.BytesIO()
        pic = Image.fromarray(enlarge(image, side))
        if max(pic.size) > side:
            pic.thumbnail((side, side))
        pic.save(buf, format="PNG", optimize=True)
        urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return urls


def gallery(images: Any, captions: list[str], width: int = 96) -> None:
    """uint8 (N, C, H, W) images in wrapping rows, a caption under each; small ones enlarged (nearest)."""
    if len(images):
        st.image([enlarge(im, width) for im in images], caption=captions, width=width)


def selected(event: Any, name: str) -> Any:
    """What a chart's selection `name` holds: a list of points (point selection), {field: [lo, hi]}
    (interval) or None when nothing is selected."""
    try:
        value = event["selection"][name]
    except (KeyError, TypeError):
        return None
    return value or None


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


def conv_layers(model: Any) -> list[str]:
    """Dotted paths of a network's convolutions, input side first (where feature maps can be read)."""
    from torch import nn

    from cvdemo.models import module_paths

    return module_paths(model, nn.Conv2d)


def filters_picture(weights: Any, side: int = 40) -> Any:
    """First-layer filters float (O, I, kh, kw) -> one image: each filter on its own scale, in colour
    when it reads RGB, grey otherwise."""
    import numpy as np

    from cvdemo.filters import filters_for_display

    pics = (filters_for_display(weights) * 255 + 0.5).astype(np.uint8)
    return tile(pics, columns=int(np.ceil(np.sqrt(len(pics)))), min_side=side, gap=4)


def feature_maps_picture(maps: Any, limit: int = 64, side: int = 56) -> Any:
    """Activations float (C, h, w) -> one viridis image of the first `limit` channels, each scaled to its
    own 1st-99th percentile (dark = low, bright = high)."""
    import numpy as np
    from matplotlib import colormaps

    from cvdemo.filters import maps_for_display

    unit = maps_for_display(maps, limit)
    rgb = (colormaps["viridis"](unit)[..., :3] * 255 + 0.5).astype(np.uint8)  # (C, h, w, 3)
    return tile(rgb.transpose(0, 3, 1, 2), columns=int(np.ceil(np.sqrt(len(unit)))), min_side=side, gap=4)


@st.cache_data(max_entries=16, show_spinner=False)
def feature_maps_of(_classifier: Any, key: tuple, _image: Any, layer: str | None) -> Any:
    """cvdemo.filters.feature_maps of one image (`key` names network, checkpoint time and image): float (C, h, w)."""
    from cvdemo.filters import feature_maps

    with model_lock():
        return feature_maps(_classifier.model, _classifier.to_input(_image), layer)[1]


# -- shareable settings and reports --------------------------------------------------------------

KEY_URL_SETTINGS = "url_settings"      # the query parameters the Train page last read from or wrote to the URL
KEY_TRAIN_SHARE = "train_share"        # Train form: "Update the link" (keeps the form in the URL, trains nothing)
KEY_CONFIG_DOWNLOAD = "config_download"
KEY_CONFIG_UPLOAD = "config_upload"
KEY_CONFIG_UPLOADED = "config_uploaded"  # file id of the settings file already applied
KEY_REPORT_BUILD = "report_build"
KEY_REPORT = "report_html"             # {"runs": the run ids and checkpoint times it covers, "html": bytes}
KEY_REPORT_DOWNLOAD = "report_download"


def set_draft(config: RunConfig) -> None:
    """Make `config` the draft and let the Train form's widgets show it (their kept values are dropped)."""
    st.session_state[KEY_DRAFT] = config.to_dict()
    for key in [k for k in st.session_state.keys() if isinstance(k, str) and k.startswith(KEY_FORM)]:
        del st.session_state[key]


def settings_from_url(models: list[str] | None = None) -> str | None:
    """The first time the Train page sees a link's query parameters, they become the draft (on top of the
    defaults). Returns a one-sentence warning about parameters that could not be used, else None."""
    from cvdemo.share import config_from_query

    params = st.query_params.to_dict()
    if not params or params == st.session_state.get(KEY_URL_SETTINGS):
        return None
    shared = config_from_query(params, models=models)
    set_draft(shared.config)
    st.session_state[KEY_URL_SETTINGS] = params
    return shared.message()


def settings_to_url(config: dict[str, Any]) -> dict[str, str]:
    """Put the settings that differ from the defaults into the URL's query parameters; returns them."""
    from cvdemo.share import config_to_query

    try:
        wanted = config_to_query(RunConfig.from_dict(config))
    except CvdemoError:
        return {}
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
    st.session_state[KEY_URL_SETTINGS] = wanted
    return wanted


def share_link(params: dict[str, str]) -> str:
    """The address of this page with these query parameters (relative when the server's is unknown)."""
    from urllib.parse import urlencode

    try:
        base = (st.context.url or "").split("?", 1)[0]
    except Exception:  # pragma: no cover - no browser context (bare mode)
        base = ""
    query = urlencode(params)
    return f"{base}?{query}" if query else base or "(the defaults: no parameters)"


def settings_json(config: dict[str, Any]) -> str:
    """The draft as a settings file: the shape of a run's config.json (`cvdemo train --config` reads it)."""
    import json

    return json.dumps(config, indent=2) + "\n"


def settings_from_file(name: str, data: bytes) -> RunConfig:
    """A settings file (a run's config.json, or one downloaded here) -> RunConfig; one sentence if unusable."""
    import json

    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CvdemoError(f"{name} is not a JSON settings file: give a run's config.json or a file saved "
                          "with Download these settings") from None
    return RunConfig.from_dict(raw)


def report_key(found: list[runs.RunInfo]) -> tuple:
    """What a stored report covers: the runs, in order, with their checkpoints' modification times."""
    def stamp(r: runs.RunInfo) -> float:
        best = r.path / "best.pt"
        return best.stat().st_mtime if best.exists() else 0.0

    return tuple((r.id, stamp(r)) for r in found)


def build_report(found: list[runs.RunInfo]) -> bytes:
    """cvdemo.report's HTML for these runs (the same file `cvdemo report` writes), as bytes."""
    from cvdemo.report import build_report as build

    return build([r.path for r in found]).encode("utf-8")
