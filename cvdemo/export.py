"""Export a run as a model that runs without cvdemo, with a model card.

    card = export_run(run_dir, "exported/", fmt="torchscript")
    # exported/model.pt         TorchScript: resize, channel conversion, normalisation and softmax inside
    # exported/model_card.json  classes, input, normalisation, training configuration, metrics, date
    # exported/model_card.md    the same for people

    probs = torch.jit.load("exported/model.pt")(images)   # float (N, C, H, W) in [0, 1] or uint8; any H, W

The TorchScript module takes images as they come (1 or 3 channels, any size), resizes them
bilinearly to the training size (antialiased when shrinking), converts the channels, normalises
with the training mean and std and returns softmax probabilities (N, classes): exactly the
preprocessing `cvdemo predict` applies. Its model card travels inside the .pt file too (read with
`torch.jit.load(path, _extra_files={"model_card.json": ""})`), so the file alone is enough for
`cvdemo predict model.pt image.png`.

ONNX (`fmt="onnx"`, needs the onnx and onnxscript packages) has a fixed input size: float
(N, C, S, S) in [0, 1] with the card's channel count and size; normalisation and softmax are
inside, resizing is the caller's (the card says so).

Loading a TorchScript file runs torch.jit.load, which reads TorchScript code and tensors and
unpickles no Python objects; cvdemo's own checkpoints are still only read with
torch.load(weights_only=True).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cvdemo import __version__, runs
from cvdemo.checkpoint import checkpoint_path, load_checkpoint
from cvdemo.data import to_model_input
from cvdemo.data.decode import GRAY_MODES, to_mode
from cvdemo.errors import CheckpointError, ConfigError, CvdemoError
from cvdemo.evaluate import evaluate_run, load_split, sample_images
from cvdemo.predict import Classifier

FORMATS = ("torchscript", "onnx")
CARD_FORMAT = "cvdemo-model-card/1"
CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
FILES = {"torchscript": "model.pt", "onnx": "model.onnx"}
CHECK_IMAGES = 64  # test images the export is checked on against the run's own pipeline


class Packaged(nn.Module):
    """A trained network with its preprocessing and softmax: images in, probabilities out."""

    def __init__(self, net: nn.Module, image_size: int, channels: int, mean: tuple[float, ...],
                 std: tuple[float, ...]):
        super().__init__()
        self.net = net
        self.image_size = int(image_size)
        self.channels = int(channels)
        # Per-channel statistics; one value for a grey model (a colour image is averaged to grey first).
        self.register_buffer("mean", torch.tensor([float(m) for m in mean], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std], dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, C, H, W) in [0, 1] or uint8 in [0, 255], C = 1 or 3 -> float (N, classes) probabilities."""
        if x.dtype == torch.uint8:
            x = x.to(torch.float32) / 255.0
        else:
            x = x.to(torch.float32)
        h, w = x.shape[-2], x.shape[-1]
        if h != self.image_size or w != self.image_size:
            x = F.interpolate(x, size=[self.image_size, self.image_size], mode="bilinear", align_corners=False,
                              antialias=self.image_size < h or self.image_size < w)
        if x.shape[1] == 3 and self.channels == 1:
            x = x.mean(dim=1, keepdim=True)
        elif x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        # mean and std are buffers, which nn.Module's type hints cannot tell from submodules; no class-level
        # annotation for mypy either: TorchScript cannot resolve one under `from __future__ import annotations`.
        x = (x - self.mean) / self.std  # type: ignore[operator]
        return torch.softmax(self.net(x), dim=1)


# -- export --------------------------------------------------------------------------------------

def _packaged(clf: Classifier) -> Packaged:
    mean, std = clf.mean, clf.std
    if clf.in_channels == 3 and len(mean) == 1:
        mean, std = mean * 3, std * 3
    return Packaged(clf.model.eval(), clf.image_size, clf.in_channels, mean, std).eval()


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch.jit's deprecation notices (TorchScript stays the format that loads with no Python)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.(jit|onnx)")
        yield


def to_torchscript(clf: Classifier) -> torch.jit.ScriptModule:
    """The network traced at its input size, inside a scripted Packaged (whose branches on size and
    channels stay branches)."""
    with _quiet():
        example = torch.zeros(1, clf.in_channels, clf.image_size, clf.image_size)
        with torch.no_grad():
            traced = torch.jit.trace(clf.model.eval(), example, check_trace=False)
        packaged = _packaged(clf)
        packaged.net = traced
        return torch.jit.script(packaged)


def _write_onnx(clf: Classifier, path: Path) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the onnx and onnxscript packages (pip install onnx onnxscript); "
                          "--format torchscript works without them") from None
    packaged = _packaged(clf)
    example = (torch.rand(2, clf.in_channels, clf.image_size, clf.image_size),)
    try:
        # The exporter prints its progress on stdout, which `--json` keeps for one JSON line.
        with _quiet(), contextlib.redirect_stdout(io.StringIO()):
            program = torch.onnx.export(packaged, example, dynamo=True, input_names=["images"],
                                        output_names=["probabilities"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))
            assert program is not None  # dynamo=True always returns the program
            program.save(str(path))
    except Exception as e:  # the exporter's errors are long; one line is enough to act on
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CvdemoError(f"ONNX export of {clf.source} failed ({first}); try --format torchscript") from None


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _metrics(run_dir: Path, checkpoint: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Test-split metrics of the exported checkpoint (cvdemo.evaluate); the run's summary when its data
    can no longer be read."""
    try:
        r = evaluate_run(run_dir, "test", checkpoint)
    except CvdemoError as e:
        test = summary.get("test") or {}
        if checkpoint != "best" or not test:
            return {"split": "test", "note": f"not measured: {e}"}
        return {"split": "test", "checkpoint": "best", "images": test.get("n"), "top1": test.get("top1"),
                "top2": test.get("top2"), "top5": test.get("top5"), "macro_f1": test.get("macro_f1"),
                "loss": test.get("loss"), "measured_by": "the training run (its data is no longer readable)"}
    return {"split": r.predictions.split, "checkpoint": r.predictions.checkpoint, "images": r.n, "top1": r.top1,
            "top2": r.topk[2], "top5": r.top5, "macro_f1": r.macro_f1, "loss": r.loss, "ece": r.ece,
            "per_class_f1": {c["class"]: c["f1"] for c in r.per_class}, "measured_by": "cvdemo evaluate"}


Batch = Callable[[torch.Tensor], torch.Tensor]


def _check(run_dir: Path, clf: Classifier, exported: Batch, feed: Batch | None = None) -> dict[str, Any]:
    """Largest difference between the export's probabilities and the run's own pipeline (Classifier) on up
    to CHECK_IMAGES test images. `exported` maps a batch to probabilities; `feed` turns the stored uint8
    images into its input (default: as they are)."""
    try:
        images, _ = load_split(run_dir, "test")
    except CvdemoError as e:
        return {"note": f"not checked: the run's test images cannot be read ({e})"}
    n = min(CHECK_IMAGES, len(images))
    if n == 0:
        return {"note": "not checked: the run has no test images"}
    x = sample_images(run_dir, "test", range(n))
    with torch.no_grad():
        expected = torch.softmax(clf.model(to_model_input(x, size=clf.image_size, mean=clf.mean, std=clf.std,
                                                          channels=clf.in_channels)), dim=1)
        got = exported(feed(x) if feed is not None else x)
    return {"split": "test", "images": n, "max_abs_diff": float((got - expected).abs().max())}


def onnx_input(clf: Classifier, images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> what the ONNX export takes: float (N, channels, S, S) in [0, 1],
    resized and channel-converted exactly as the run's own pipeline does."""
    k = clf.in_channels
    return to_model_input(images, size=clf.image_size, mean=(0.0,) * k, std=(1.0,) * k, channels=k)


def export_run(run_dir: str | Path, out_dir: str | Path, fmt: str = "torchscript",
               checkpoint: str = "best") -> dict[str, Any]:
    """Write the model file and its card (JSON and Markdown) into `out_dir`; returns the card."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    run_dir = runs.resolve_run(run_dir)
    ckpt_file, checkpoint = checkpoint_path(run_dir, checkpoint)
    ckpt = load_checkpoint(ckpt_file)
    clf = Classifier.from_checkpoint(ckpt, str(run_dir))
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CvdemoError(f"cannot create the export folder {out}: {e.strerror or e}") from None
    if (out / "config.json").exists():
        raise CvdemoError(f"{out} is a run folder; export into a folder of its own")
    config = runs.read_json(run_dir / "config.json")
    summary_path = run_dir / "summary.json"
    summary = runs.read_json(summary_path) if summary_path.exists() else {}
    model_file = out / FILES[fmt]
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "name": config.get("name") or run_dir.name,
        "run": run_dir.name,
        "architecture": ckpt["model"],
        "pretrained_start": bool(config.get("model", {}).get("pretrained")),
        "model_format": fmt,
        "file": model_file.name,
        "classes": list(clf.classes),
        "num_classes": len(clf.classes),
        "input": _input_spec(clf, fmt),
        "normalization": {"mean": list(clf.mean), "std": list(clf.std), "baked_in": True,
                          "formula": "(x - mean) / std on pixel values scaled to [0, 1]"},
        "output": {"name": "probabilities", "shape": ["N", len(clf.classes)],
                   "meaning": "softmax probabilities, one column per class in the order of `classes`"},
        "checkpoint": {"which": checkpoint, "epoch": ckpt.get("epoch"), "val_top1": ckpt.get("val_top1"),
                       "chosen_on": "validation split" if checkpoint == "best" else "last finished epoch"},
        "training": {"config": config, "epochs": summary.get("epochs"), "seconds": summary.get("seconds"),
                     "device": summary.get("device"), "status": summary.get("status"),
                     "data": summary.get("data"), "params_total": summary.get("params_total")},
        "metrics": _metrics(run_dir, checkpoint, summary),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cvdemo_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
    }
    tmp = model_file.with_name(f".{model_file.name}.tmp")
    try:
        if fmt == "torchscript":
            module = to_torchscript(clf)
            card["check"] = _check(run_dir, clf, module)
            with _quiet():
                torch.jit.save(module, str(tmp), _extra_files={CARD_JSON: json.dumps(card)})
        else:
            _write_onnx(clf, tmp)
            card["check"] = _onnx_check(run_dir, clf, tmp)
        tmp.replace(model_file)
    finally:
        tmp.unlink(missing_ok=True)
    card["sha256"] = _sha256(model_file)
    runs.write_json(out / CARD_JSON, card)
    runs.write_atomic(out / CARD_MD, card_markdown(card).encode("utf-8"))
    umask = os.umask(0)
    os.umask(umask)
    for name in (CARD_JSON, CARD_MD):  # files to hand on: readable like any other file the user writes
        os.chmod(out / name, 0o666 & ~umask)
    return card


def _input_spec(clf: Classifier, fmt: str) -> dict[str, Any]:
    size, c = clf.image_size, clf.in_channels
    if fmt == "torchscript":
        return {"name": "images", "layout": "NCHW", "size": size, "channels": c,
                "dtype": "float32 in [0, 1] or uint8 in [0, 255]",
                "accepts": "1 or 3 channels and any height and width",
                "resize": f"baked in: bilinear to {size}x{size} (antialiased when shrinking), the whole image, "
                          "no crop",
                "channel_conversion": "baked in: " + ("colour averaged to grey" if c == 1 else "grey copied to 3 "
                                                                                             "channels")}
    return {"name": "images", "layout": "NCHW", "size": size, "channels": c, "dtype": "float32 in [0, 1]",
            "accepts": f"exactly (N, {c}, {size}, {size})",
            "resize": f"not included: resize the whole image (no crop) bilinearly to {size}x{size} first",
            "channel_conversion": f"not included: give {c} channel{'s' if c > 1 else ''}"}


def _onnx_check(run_dir: Path, clf: Classifier, path: Path) -> dict[str, Any]:
    """The ONNX file run by onnxruntime when it is installed (else not checked here)."""
    try:
        import onnxruntime
    except ImportError:
        return {"note": "not checked here (install onnxruntime to check it)"}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return _check(run_dir, clf, lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0]),
                  lambda x: onnx_input(clf, x))


def card_markdown(card: dict[str, Any]) -> str:
    """The model card for people: what goes in, what comes out, how it was trained and how well it does."""
    def pct(v: object) -> str:
        return f"{v:.1%}" if isinstance(v, (int, float)) else "–"

    inp, norm, m, ck = card["input"], card["normalization"], card["metrics"], card["checkpoint"]
    train = card["training"]
    lines = [f"# Model card: {card['name']}", "",
             f"{card['architecture']} image classifier with {card['num_classes']} classes, exported by cvdemo "
             f"{card['cvdemo_version']} (torch {card['torch_version']}) on {card['date']} from run `{card['run']}` "
             f"as {card['model_format']} (`{card['file']}`, sha256 `{card.get('sha256', '?')[:16]}…`).", "",
             "## Input and output", "",
             "| | |", "|---|---|",
             f"| input | {inp['layout']} tensor, {inp['dtype']}; accepts {inp['accepts']} |",
             f"| size | {inp['size']}x{inp['size']} pixels; resize: {inp['resize']} |",
             f"| channels | {inp['channels']}; {inp['channel_conversion']} |",
             f"| normalisation | mean {', '.join(f'{v:.4f}' for v in norm['mean'])}, std "
             f"{', '.join(f'{v:.4f}' for v in norm['std'])}: {norm['formula']}, inside the model |",
             f"| output | {card['output']['meaning']}, shape (N, {card['num_classes']}) |", "",
             "## Classes", "", ", ".join(f"{i}: {c}" for i, c in enumerate(card["classes"])), "",
             f"## Metrics ({m.get('split', 'test')} split)", ""]
    if "top1" in m:
        lines += [f"Measured on {m.get('images')} held-out {m['split']} images with the {m.get('checkpoint')} "
                  f"checkpoint (by {m.get('measured_by')}).", "",
                  "| top-1 | top-2 | top-5 | macro-F1 | loss |", "|---|---|---|---|---|",
                  f"| {pct(m.get('top1'))} | {pct(m.get('top2'))} | {pct(m.get('top5'))} | "
                  f"{m.get('macro_f1', float('nan')):.3f} | {m.get('loss', float('nan')):.3f} |"]
    else:
        lines.append(m.get("note", "not measured"))
    check = card.get("check") or {}
    if "max_abs_diff" in check:
        lines += ["", f"The exported file was checked against the run on {check['images']} {check['split']} images: "
                      f"largest difference in any probability {check['max_abs_diff']:.2g}."]
    elif check.get("note"):
        lines += ["", f"Check against the run: {check['note']}."]
    config = train["config"]
    lines += ["", "## Training", "",
              f"Checkpoint: {ck['which']} (epoch {ck.get('epoch')}, {ck['chosen_on']}, validation top-1 "
              f"{pct(ck.get('val_top1'))}). Trained {train.get('epochs')} epochs in "
              f"{train.get('seconds') or 0:.0f} s on {train.get('device')}; "
              f"{(train.get('params_total') or 0):,} parameters.", "",
              "| section | setting | value |", "|---|---|---|"]
    for section in ("data", "model", "train"):
        for key, value in config.get(section, {}).items():
            lines.append(f"| {section} | {key} | {', '.join(map(str, value)) if isinstance(value, list) else value} |")
    lines += ["", "## Use", "", "```python", "import torch",
              f"model = torch.jit.load({card['file']!r})" if card["model_format"] == "torchscript" else
              f"import onnxruntime  # session = onnxruntime.InferenceSession({card['file']!r})",
              f"probs = model(images)  # images: {inp['dtype']}, (N, C, H, W)" if card["model_format"] ==
              "torchscript" else f"probs = session.run(None, {{'images': images}})[0]  # {inp['accepts']}",
              "```", ""]
    if card["model_format"] == "torchscript":
        lines += [f"or `cvdemo predict {card['file']} photo.png`.", ""]
    return "\n".join(lines)


# -- loading an export ---------------------------------------------------------------------------

def _torchscript_file(path: Path) -> Path | None:
    """The TorchScript file a path names: the file itself, or model.pt in an export folder."""
    if path.is_dir():
        candidate = path / FILES["torchscript"]
        return candidate if candidate.is_file() and not (path / "config.json").exists() else None
    return path if path.is_file() and path.suffix == ".pt" else None


def _onnx_export(path: Path) -> bool:
    return path.is_dir() and (path / FILES["onnx"]).is_file() and not (path / "config.json").exists()


def is_export(path: str | Path) -> bool:
    """True for a TorchScript file (or a folder holding model.pt, or an ONNX export's folder) rather than a run."""
    if _onnx_export(Path(path)):
        return True
    file = _torchscript_file(Path(path))
    if file is None or not zipfile.is_zipfile(file):
        return False
    with zipfile.ZipFile(file) as z:
        return any("/code/" in name for name in z.namelist())


class ExportedClassifier(Classifier):
    """A Classifier over an exported TorchScript model: images go in whole (the model resizes them)."""

    card: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> ExportedClassifier:
        file = _torchscript_file(Path(path))
        if file is None and _onnx_export(Path(path)):
            raise CheckpointError(f"{path} holds an ONNX export, which cvdemo predict does not run: export the run "
                                  "with --format torchscript, or run model.onnx with onnxruntime")
        if file is None or not is_export(file):
            raise CheckpointError(f"{path} is not an exported TorchScript model (export one with cvdemo export)")
        extra = {CARD_JSON: ""}
        try:
            with _quiet():
                module = torch.jit.load(str(file), map_location="cpu", _extra_files=extra)
        except RuntimeError as e:
            raise CheckpointError(f"{file.name} is damaged or not a TorchScript model "
                                  f"({str(e).splitlines()[0][:120]})") from None
        try:
            card = json.loads(extra[CARD_JSON] or b"{}")
        except ValueError:
            card = {}
        if card.get("format") != CARD_FORMAT:
            raise CheckpointError(f"{file.name} has no cvdemo model card inside, so its class names are unknown; "
                                  "export the run again with cvdemo export")
        inp, norm = card["input"], card["normalization"]
        self = cls(module.eval(), list(card["classes"]), int(inp["size"]), tuple(norm["mean"]), tuple(norm["std"]),
                   int(inp["channels"]), False, f"{file} (exported {card.get('model_format')})")
        self.card = card
        return self

    def to_input(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> uint8 (1, C, H, W) at its own size: the exported model does the rest."""
        import numpy as np

        a = np.asarray(to_mode(image, "L" if image.mode in GRAY_MODES else "RGB"))
        t = torch.from_numpy(a.copy())
        return t.reshape(1, 1, *a.shape) if a.ndim == 2 else t.permute(2, 0, 1).unsqueeze(0)

    @torch.no_grad()
    def probabilities(self, images: list[Image.Image]) -> torch.Tensor:
        """Probabilities (N, classes); one call per image, since images may differ in size."""
        return torch.cat([self.model(self.to_input(im)) for im in images])


def export_zip(run_dir: str | Path, fmt: str = "torchscript") -> tuple[bytes, dict[str, Any]]:
    """The export of `export_run` as one zip (the model file and its two cards) in memory, for a download
    button; returns the zip's bytes and the card."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cvdemo-export-") as tmp:
        card = export_run(run_dir, tmp, fmt)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(Path(tmp).iterdir()):
                z.write(path, path.name)
    return buf.getvalue(), card
