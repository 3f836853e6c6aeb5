"""Static figures (PNG) for the command line and reports, drawn with matplotlib's Agg backend.

matplotlib is imported inside each function: it costs a second at start-up and
most commands never draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from cvdemo.embed import Embedding
    from cvdemo.evaluate import Evaluation
    from cvdemo.explain import Explanation
    from cvdemo.train.lr_finder import LRFindResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def lr_find_plot(result: LRFindResult, path: str | Path) -> Path:
    """Loss against learning rate on a log axis, with the suggestion and the minimum/10 rule marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(result.lrs, result.raw_losses, color="#cbd5e1", lw=1, label="loss per batch")
    ax.plot(result.lrs, result.losses, color="#2563eb", lw=2, label="smoothed loss")
    ax.set_xscale("log")
    ax.axvline(result.suggested_lr, color="#dc2626", ls="--",
               label=f"steepest descent: {result.suggested_lr:.2g}")
    ax.axvline(result.min_div10_lr, color="#16a34a", ls=":", label=f"minimum ÷ 10: {result.min_div10_lr:.2g}")
    top = max(result.losses[: max(len(result.losses) // 5, 1)]) * 1.6
    ax.set_ylim(min(result.losses) * 0.9, top)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title("Learning-rate finder")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left")
    return save(fig, path)


# -- analysis: evaluation, embeddings, explanations, filters (cvdemo.evaluate / embed / explain / filters) --

def _tick_labels(ax: Any, names: list[str], axis: str, limit: int = 40) -> None:
    """Class names on an axis when there are few enough to read; otherwise every n-th index."""
    k = len(names)
    if k <= limit:
        ticks, labels = list(range(k)), [n[:18] for n in names]
    else:
        step = max(1, k // 20)
        ticks, labels = list(range(0, k, step)), [str(i) for i in range(0, k, step)]
    if axis == "x":
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels, rotation=90 if k > 6 or max(map(len, labels), default=0) > 4 else 0, fontsize=8)
    else:
        ax.set_yticks(ticks)
        ax.set_yticklabels(labels, fontsize=8)


def confusion_plot(result: Evaluation, path: str | Path) -> Path:
    """Row-normalised confusion matrix as a heat map (class names on both axes, counts in small matrices)."""
    plt = _pyplot()
    names = result.classes
    k = len(names)
    side = min(4.5 + 0.35 * k, 16)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    im = ax.imshow(result.confusion_normalized, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("share of the true class's images")
    if k <= 15:
        for t in range(k):
            for p in range(k):
                count = int(result.confusion[t, p])
                if count:
                    share = result.confusion_normalized[t, p]
                    ax.text(p, t, str(count), ha="center", va="center", fontsize=8,
                            color="white" if share > 0.5 else "#1e293b")
    _tick_labels(ax, names, "x")
    _tick_labels(ax, names, "y")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    pred = result.predictions
    ax.set_title(f"Confusion matrix: {pred.split} split, {result.n} images, top-1 {result.top1:.1%}")
    return save(fig, path)


def per_class_plot(result: Evaluation, path: str | Path, limit: int = 40) -> Path:
    """Precision, recall and F1 of each class as grouped horizontal bars (the worst `limit` when there are more)."""
    plt = _pyplot()
    import numpy as np

    rows = sorted(result.per_class, key=lambda r: r["f1"])[:limit] if len(result.per_class) > limit \
        else list(result.per_class)
    k = len(rows)
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.32 * k + 1.5)))
    y = np.arange(k)
    for j, (key, colour) in enumerate((("precision", "#60a5fa"), ("recall", "#f59e0b"), ("f1", "#16a34a"))):
        ax.barh(y + (j - 1) * 0.27, [r[key] for r in rows], height=0.27, color=colour, label=key)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['class'][:24]} ({r['support']})" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("score (fraction)")
    ax.axvline(result.macro_f1, color="#16a34a", ls="--", lw=1, label=f"macro F1 {result.macro_f1:.3f}")
    worst = " (the worst classes)" if len(result.per_class) > limit else ""
    ax.set_title(f"Per-class precision, recall and F1{worst}; support in brackets")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def reliability_plot(result: Evaluation, path: str | Path) -> Path:
    """Reliability diagram: accuracy against confidence per bin, the diagonal, and how many samples each bin holds."""
    plt = _pyplot()
    bins = result.reliability
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6, 6.5), height_ratios=(3, 1), sharex=True)
    width = bins[0]["upper"] - bins[0]["lower"]
    centres = [(b["lower"] + b["upper"]) / 2 for b in bins]
    acc = [b["accuracy"] if b["accuracy"] is not None else 0.0 for b in bins]
    conf = [b["confidence"] if b["confidence"] is not None else 0.0 for b in bins]
    ax.bar(centres, acc, width=width * 0.95, color="#2563eb", edgecolor="white", label="accuracy in the bin")
    ax.bar(centres, [abs(c - a) for a, c in zip(acc, conf)], bottom=[min(a, c) for a, c in zip(acc, conf)],
           width=width * 0.95, facecolor="none", edgecolor="#dc2626", hatch="///", lw=0.8,
           label="gap to the mean confidence")
    ax.plot([0, 1], [0, 1], color="#475569", ls="--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram ({result.predictions.split} split): ECE {result.ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    ax2.bar(centres, [b["count"] for b in bins], width=width * 0.95, color="#94a3b8")
    ax2.set_xlabel("confidence (top probability)")
    ax2.set_ylabel("images")
    return save(fig, path)


def gallery_plot(images: Any, titles: list[str], path: str | Path, title: str, columns: int = 8) -> Path:
    """A grid of uint8 (n, C, H, W) images with a caption under each (nearest-neighbour upscaling)."""
    plt = _pyplot()
    import numpy as np

    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        img = np.asarray(images[i])
        ax = axes.flat[i]
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(np.transpose(img, (1, 2, 0)), interpolation="nearest")
        ax.set_title(titles[i], fontsize=8)
    if n == 0:
        axes.flat[0].text(0.5, 0.5, "nothing to show", ha="center", va="center")
    fig.suptitle(title)
    return save(fig, path)


def embedding_plot(embedding: Embedding, path: str | Path) -> Path:
    """Scatter of projected points coloured by true class (2-D or 3-D); misclassified points ringed in black."""
    plt = _pyplot()
    import numpy as np

    names = embedding.classes
    k = len(names)
    three = embedding.dims == 3
    fig = plt.figure(figsize=(8.5, 7))
    ax = fig.add_subplot(projection="3d") if three else fig.add_subplot()
    cmap = plt.get_cmap("tab10" if k <= 10 else "tab20" if k <= 20 else "turbo")
    colours = cmap(embedding.labels / max(k - 1, 1)) if k > 20 else cmap(embedding.labels % cmap.N)
    coords = [embedding.coords[:, j] for j in range(embedding.dims)]
    wrong = np.zeros(len(embedding.labels), bool)
    if embedding.preds is not None and embedding.pred_classes == embedding.classes:
        wrong = embedding.preds != embedding.labels
    edge = np.where(wrong[:, None], np.array([[0, 0, 0, 1.0]]), colours)
    ax.scatter(*coords, c=colours, s=14, edgecolors=edge, linewidths=np.where(wrong, 1.0, 0.0))
    if k <= 20:
        for c in range(k):
            ax.scatter([], [], color=cmap(c % cmap.N), label=names[c][:20], s=20)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.15 if three else 1.02, 0.5), title="true class")
    method = "PCA" if embedding.method == "pca" else "t-SNE"
    if embedding.method == "pca" and embedding.explained_variance:
        for j, setter in enumerate((ax.set_xlabel, ax.set_ylabel, getattr(ax, "set_zlabel", None))[: embedding.dims]):
            assert setter is not None  # only 3-D axes get a third label, and they have set_zlabel
            setter(f"PC{j + 1} ({embedding.explained_variance[j]:.1%} of variance)")
    else:
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        if three:
            ax.set_zlabel("t-SNE 3")
    backbone = ", ImageNet weights" if embedding.backbone == "pretrained" else ""
    ringed = " (ringed: misclassified)" if wrong.any() else ""
    ax.set_title(f"{method} of {embedding.layer} features{backbone}: {embedding.split} split, "
                 f"{len(embedding.labels)} images{ringed}\n5-NN accuracy in this picture {embedding.knn5:.1%}",
                 fontsize=10)
    return save(fig, path)


def explain_grid_plot(image: Image.Image, explanations: list[Explanation], class_name: str, path: str | Path,
                      alpha: float = 0.5) -> Path:
    """The image the model saw, then one overlay per method in catalogue order (grouped by family), read
    left to right, each labelled with its family, method and time; a wide grid (about 1.6 columns per row)."""
    import math

    plt = _pyplot()
    from cvdemo.explain import BY_NAME, METHODS, overlay

    ordered = sorted(explanations, key=lambda e: METHODS.index(e.method) if e.method in METHODS else len(METHODS))
    n = len(ordered) + 1
    cols = min(n, max(1, math.ceil(math.sqrt(1.6 * n))))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title("input", fontsize=10)
    for ax, e in zip(axes.flat[1:], ordered):
        family = BY_NAME[e.method].family if e.method in BY_NAME else "other"
        ax.imshow(overlay(image, e.map, alpha=alpha))
        ax.set_title(f"{family}: {e.method.replace('_', ' ')}\n{e.seconds:.2f} s", fontsize=9)
    prob = explanations[0].target_prob if explanations else float("nan")
    fig.suptitle(f"Why '{class_name}' (p = {prob:.1%})? Red = more evidence for it", fontsize=12)
    return save(fig, path)


def filters_plot(weights: np.ndarray, path: str | Path, title: str) -> Path:
    """First-layer filters (O, I, kh, kw) as small images: RGB for 3 input channels, grey otherwise,
    each scaled to its own range so its pattern shows."""
    plt = _pyplot()
    import numpy as np

    from cvdemo.filters import filters_for_display

    w = filters_for_display(weights)
    n = len(w)
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols + 1, 0.9 * rows + 1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        if w.shape[1] == 3:
            ax.imshow(np.transpose(w[i], (1, 2, 0)), interpolation="nearest")
        else:
            ax.imshow(w[i, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def feature_maps_plot(maps: np.ndarray, path: str | Path, title: str, image: Image.Image | None = None,
                      limit: int = 64) -> Path:
    """Activation maps (C, h, w) of one image, one panel per channel (at most `limit`), each scaled to its
    own 1st-99th percentile range (dark = low, bright = high) so every filter's response shows."""
    plt = _pyplot()
    import numpy as np

    from cvdemo.filters import maps_for_display

    m = np.asarray(maps, dtype=np.float32)[:limit]
    unit = maps_for_display(m, limit)
    n = len(m) + (image is not None)
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols + 0.5, 1.35 * rows + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    start = 0
    if image is not None:
        axes.flat[0].imshow(image)
        axes.flat[0].set_title("input", fontsize=7)
        start = 1
    for i in range(len(m)):
        ax = axes.flat[start + i]
        ax.imshow(unit[i], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{i}: {float(m[i].mean()):.2g}", fontsize=7)
    fig.suptitle(f"{title}\neach map on its own scale (dark = low, bright = high); mean activation in the title",
                 fontsize=9)
    return save(fig, path)


# -- training curves (cvdemo.report) ---------------------------------------------------------------

def _plain(text: str) -> str:
    """Text that matplotlib draws as written: a pair of $ would otherwise start mathtext."""
    return str(text).replace("$", r"\$")


def curves_plot(metrics_by_run: dict[str, list[dict[str, Any]]], path: str | Path, title: str | None = None) -> Path:
    """Loss and top-1 accuracy against epoch from metrics.jsonl records, side by side.

    Training loss comes from the step records (several points per epoch) when a run logged them,
    else from the epoch records; validation values and training accuracy from the epoch records.
    One run: training and validation in two colours. Several: one colour per run, validation dashed.
    """
    plt = _pyplot()
    several = len(metrics_by_run) > 1
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    cmap = plt.get_cmap("tab10")
    for i, (run, records) in enumerate(metrics_by_run.items()):
        epochs = [m for m in records if m.get("kind") == "epoch"]
        steps = [m for m in records if m.get("kind") == "step" and m.get("loss") is not None]
        train_loss = ([(m["epoch"], m["loss"]) for m in steps] if steps else
                      [(m["epoch"], m["train_loss"]) for m in epochs if m.get("train_loss") is not None])
        series = {
            (loss_ax, "train"): train_loss,
            (loss_ax, "validation"): [(m["epoch"], m["val_loss"]) for m in epochs if m.get("val_loss") is not None],
            (acc_ax, "train"): [(m["epoch"], m["train_top1"]) for m in epochs if m.get("train_top1") is not None],
            (acc_ax, "validation"): [(m["epoch"], m["val_top1"]) for m in epochs if m.get("val_top1") is not None],
        }
        for (ax, split), points in series.items():
            if not points:
                continue
            xs, ys = zip(*points)
            colour = cmap(i % 10) if several else ("#2563eb" if split == "train" else "#ea580c")
            label = f"{_plain(run)}, {split}" if several else split
            marker = "o" if len(points) <= 30 and not (ax is loss_ax and split == "train" and steps) else None
            ax.plot(xs, ys, color=colour, ls="--" if (several and split == "validation") else "-", lw=2,
                    marker=marker, ms=4, label=label)
    for ax, name in ((loss_ax, "loss (cross-entropy)"), (acc_ax, "top-1 accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="best")
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    acc_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.set_title("Loss")
    acc_ax.set_title("Top-1 accuracy")
    if title:
        fig.suptitle(_plain(title))
    fig.tight_layout()
    return save(fig, path)


# -- shared by the CLI, the report and the app ------------------------------------------------------

def write_evaluation_plots(result: Evaluation, folder: Path) -> list[Path]:
    """confusion.png, per_class.png, reliability.png and most_wrong.png in `folder`."""
    names = result.classes
    out = [confusion_plot(result, folder / "confusion.png"),
           per_class_plot(result, folder / "per_class.png"),
           reliability_plot(result, folder / "reliability.png")]
    wrong = result.most_wrong
    images = result.images([w["index"] for w in wrong])
    titles = [f"#{w['index']} true {names[w['true']][:14]}\npred {names[w['pred']][:14]} {w['confidence']:.0%}"
              for w in wrong]
    out.append(gallery_plot(images, titles, folder / "most_wrong.png",
                                  f"Most confidently wrong: {result.predictions.split} split"))
    return out


def display_size(image: Image.Image, low: int = 256, high: int = 640) -> Image.Image:
    """A PIL image resized so its long side lies in [low, high] pixels: phone photos shrink (smoothly),
    tiny images such as 8x8 digits grow (nearest neighbour, so their pixels stay visible)."""
    from PIL import Image

    side = max(image.size)
    if low <= side <= high:
        return image
    scale = (high if side > high else low) / side
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    return image.resize(size, Image.Resampling.LANCZOS if side > high else Image.Resampling.NEAREST)
