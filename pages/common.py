"""Helpers shared by the pages: session-state keys, the draft run config, caches, run display, charts.

Pages stay thin: they read widgets, call cvdemo, draw. No training or metric logic here.
torch, cvdemo.data, cvdemo.models and altair are imported inside the functions that need them,
so the Home page starts without them.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import streamlit as st

from cvdemo import runs
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
MAX_ZIP_MB = 200
MAX_IMAGE_MB = 20
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


def show_error(error: CvdemoError) -> None:
    """A user-facing error as one readable sentence on the page."""
    st.error(str(error), icon=":material/warning:")


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
    path = Path(run_dir) / "summary.json"
    try:
        return runs.read_json(path) if path.exists() else {}
    except (OSError, ValueError):
        return {}


def run_config(run_dir: Path) -> dict[str, Any]:
    try:
        return runs.read_json(Path(run_dir) / "config.json")
    except (OSError, ValueError):
        return {}


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
