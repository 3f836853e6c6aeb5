"""`cvdemo bench`: speed measured as ratios against a baseline run in the same process.

These machines are noisy, so an absolute time means little; each benchmark times
cvdemo and a plain-PyTorch baseline doing the same work back to back, and reports
both figures and their ratio (> 1 means cvdemo is faster).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {}


def benchmark(name: str):
    def register(fn):
        BENCHMARKS[name] = fn
        return fn
    return register


def timed(fn: Callable[[], Any], repeat: int = 1) -> float:
    """Best wall time of `repeat` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def write_image_folder(root: Path, n: int = 2000, classes: int = 10, size: int = 32, seed: int = 0) -> Path:
    """A train/<class>/*.png folder of synthetic colour images (a per-class colour and noise)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        c = i % classes
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        base = np.array([(c * 37) % 256, (c * 91) % 256, (c * 53) % 256], dtype=np.float32)
        img = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i}.png")
    for c in range(classes):  # a tiny test split so the folder has the two-split layout
        folder = root / "test" / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size, 3), c * 20, np.uint8)).save(folder / "0.png")
    return root


def plain_loop_epoch(model: nn.Module, loader: Any, device: torch.device, optimizer: Any) -> int:
    """The textbook training loop; returns images seen."""
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    seen = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        seen += len(y)
    return seen


@benchmark("train-throughput")
def bench_train_throughput(device: torch.device, model_name: str = "lenet", batch_size: int = 64,
                           epochs: int = 2) -> dict[str, Any]:
    """cvdemo's trainer vs ImageFolder + DataLoader + the textbook loop: same model, data, batch, device."""
    import torchvision
    from torchvision import transforms

    from cvdemo.config import TrainConfig
    from cvdemo.data import compute_mean_std, load_dataset, make_loader, to_model_input
    from cvdemo.models import create_model
    from cvdemo.train import Trainer
    from cvdemo.train.optim import build_optimizer

    with tempfile.TemporaryDirectory() as tmp:
        root = write_image_folder(Path(tmp))
        bundle = load_dataset(str(root), val_fraction=0.01)
        mean, std = compute_mean_std(bundle.train)
        cfg = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="sgd", lr=0.01, schedule="constant")

        def ours() -> None:
            torch.manual_seed(0)
            model = create_model(model_name, 10).to(device)
            loader = make_loader(bundle.train, batch_size=batch_size, shuffle=True)
            prepare = lambda x: to_model_input(x.to(device), size=32, mean=mean, std=std, channels=3)  # noqa: E731
            Trainer(model, build_optimizer(model.parameters(), cfg), None, loader, None, prepare=prepare,
                    device=device, epochs=epochs).fit()

        dataset = torchvision.datasets.ImageFolder(
            str(root / "train"), transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]))

        def baseline() -> None:
            torch.manual_seed(0)
            model = create_model(model_name, 10).to(device)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                                 num_workers=min(2, os.cpu_count() or 1),
                                                 pin_memory=device.type == "cuda")
            for _ in range(epochs):
                plain_loop_epoch(model, loader, device, opt)

        n = len(bundle.train) * epochs
        t_ours, t_base = timed(ours), timed(baseline)
    return {"model": model_name, "images": n, "ours_images_per_s": n / t_ours,
            "baseline_images_per_s": len(dataset) * epochs / t_base, "ratio": (n / t_ours) / (len(dataset) * epochs / t_base)}


@benchmark("data")
def bench_data(device: torch.device, batch_size: int = 256) -> dict[str, Any]:
    """Our loader + model-input preparation vs synthetic tensors already in memory (data for free)."""
    from cvdemo.data import load_dataset, make_loader, to_model_input

    bundle = load_dataset("digits")
    train = bundle.train
    n = len(train) * 20

    def ours() -> None:  # the training loader's choice: device-resident on a GPU ("auto"), sliced on the CPU
        loader = make_loader(train, batch_size=batch_size, shuffle=True, augment="none", resident="auto",
                             device=device)
        for _ in range(20):
            for x, _y in loader:
                to_model_input(x.to(device), size=32, mean=(0.5,), std=(0.25,), channels=1)
        if device.type == "cuda":
            torch.cuda.synchronize()

    synthetic = torch.randn(batch_size, 1, 32, 32, device=device)

    def baseline() -> None:
        for _ in range(n // batch_size):
            synthetic.mul(1.0)
        if device.type == "cuda":
            torch.cuda.synchronize()

    t_ours, t_base = timed(ours, 3), timed(baseline, 3)
    return {"images": n, "ours_images_per_s": n / t_ours, "synthetic_images_per_s": n / t_base,
            "ratio": t_base / t_ours}


@benchmark("inference")
def bench_inference(device: torch.device, model_name: str = "efficientnet_lite0", n: int = 256,
                    size: int = 224) -> dict[str, Any]:
    """cvdemo's evaluate() vs a plain torch.inference_mode() loop on the same model and images."""
    from cvdemo.data import to_model_input
    from cvdemo.models import create_model
    from cvdemo.train import evaluate

    torch.manual_seed(0)
    model = create_model(model_name, 10).to(device).eval()
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,))
    batches = [(images[i:i + 64], labels[i:i + 64]) for i in range(0, n, 64)]
    prepare = lambda x: to_model_input(x.to(device), size=size, mean=(0.5,) * 3, std=(0.5,) * 3, channels=3)  # noqa: E731

    def ours() -> None:
        evaluate(model, batches, prepare, device)

    def baseline() -> None:
        with torch.inference_mode():
            for x, y in batches:
                x = (x.to(device).float() / 255 - 0.5) / 0.5
                (model(x).argmax(1) == y.to(device)).sum().item()

    ours()  # warm-up (allocator, kernels)
    t_ours, t_base = timed(ours, 2), timed(baseline, 2)
    return {"model": model_name, "images": n, "ours_images_per_s": n / t_ours, "baseline_images_per_s": n / t_base,
            "ratio": t_base / t_ours}


@benchmark("classroom")
def bench_classroom(device: torch.device) -> dict[str, Any]:
    """Wall time of `cvdemo train --recipe lenet-digits` including process start-up, vs the textbook loop
    (26 epochs of Adam 1e-3, batch 64, 32x32) in a fresh process too."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "cvdemo", "train", "--recipe", "lenet-digits", "--out", tmp,
                               "--device", device.type, "--json"], capture_output=True, text=True)
        ours = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1])
    import json

    top1 = json.loads(proc.stdout.strip().splitlines()[-1])["test"]["top1"]
    start = time.perf_counter()
    base = subprocess.run([sys.executable, "-c", _TEXTBOOK_DIGITS], capture_output=True, text=True,
                          env={**os.environ, "CVDEMO_BENCH_DEVICE": device.type})
    baseline = time.perf_counter() - start
    base_top1 = float(base.stdout.strip().splitlines()[-1]) if base.returncode == 0 else float("nan")
    return {"seconds": ours, "test_top1": top1, "baseline_seconds": baseline, "baseline_test_top1": base_top1,
            "ratio": baseline / ours}


@benchmark("frozen-features")
def bench_frozen_features(device: torch.device, n: int = 400, epochs: int = 30, size: int = 96) -> dict[str, Any]:
    """A frozen pretrained EfficientNet-Lite0 with a trainable head (report 001's set-up, which trained the
    head for 100 epochs; 30 here keep the benchmark to a couple of minutes): backbone features computed once
    and cached vs recomputed every epoch; both accuracies are reported. With E epochs the ratio cannot
    exceed about E, since the cached run still makes one pass through the backbone."""
    from cvdemo import runs
    from cvdemo.config import RunConfig
    from cvdemo.train.job import run_training

    cfg = RunConfig().replace(data={"limit_train": n, "limit_test": 200, "image_size": size},
                              model={"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
                              train={"epochs": epochs, "batch_size": 32, "device": device.type})
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, cache in (("cached", True), ("recomputed", False)):
            c = cfg.replace(train={"cache_features": cache})
            run_dir = runs.create_run(tmp, c)
            start = time.perf_counter()
            summary = run_training(c, run_dir)
            later = [m["seconds"] for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch" and m["epoch"] > 1]
            out[label] = {"seconds": time.perf_counter() - start, "test_top1": summary["test"]["top1"],
                          "later_epoch": sorted(later)[len(later) // 2]}
    return {"images": n, "epochs": epochs, "size": size, "cached_seconds": out["cached"]["seconds"],
            "recomputed_seconds": out["recomputed"]["seconds"], "cached_test_top1": out["cached"]["test_top1"],
            "recomputed_test_top1": out["recomputed"]["test_top1"],
            # what one more epoch costs once the features are cached (median of epochs 2..E)
            "cached_epoch_seconds": out["cached"]["later_epoch"],
            "recomputed_epoch_seconds": out["recomputed"]["later_epoch"],
            "epoch_ratio": out["recomputed"]["later_epoch"] / out["cached"]["later_epoch"],
            "ratio": out["recomputed"]["seconds"] / out["cached"]["seconds"]}


def explain_subject(size: int = 224, seed: int = 0) -> tuple[nn.Module, torch.Tensor, str]:
    """(ImageNet-pretrained EfficientNet-Lite0 in eval mode with frozen parameters, one smooth random colour
    image as model input float (1, 3, size, size), the registry's Grad-CAM layer). Offline."""
    import torch.nn.functional as F

    from cvdemo.models import create_model, get_spec

    spec = get_spec("efficientnet_lite0")
    model = create_model(spec.name, None, pretrained=True).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    image = F.interpolate(torch.rand(1, 3, 14, 14, generator=g), size=size, mode="bicubic").clamp(0, 1)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return model, (image - mean) / std, spec.cam_layer


class _Best:
    """The shortest wall time and the shortest CPU time (all threads of this process) of a function's calls,
    and its last result. CPU time is what the call itself consumed, so it barely moves when other programs
    take turns on the cores; wall time is what a user waits."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn, self.wall, self.cpu, self.result = fn, float("inf"), float("inf"), None

    def __call__(self) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.result = self.fn()
        self.cpu = min(self.cpu, time.process_time() - cpu)
        self.wall = min(self.wall, time.perf_counter() - wall)


def _explain_map(model: nn.Module, x: torch.Tensor, method: str, options: dict[str, Any]) -> Any:
    from cvdemo.explain import explain

    return explain(model, x, method, **options).map


def _relative_difference(ours: Any, ref: Any) -> float:
    """max |ours - ref| / max |ref| of two maps of the same shape."""
    a = torch.as_tensor(ours, dtype=torch.float64)
    b = torch.as_tensor(ref.detach() if isinstance(ref, torch.Tensor) else ref, dtype=torch.float64)
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def explain_vs_captum(model: nn.Module, x: torch.Tensor, *, layer: str, n_steps: int = 50,
                      internal_batch_size: int | None = None, n_samples: int = 16, stdev: float = 0.15,
                      window: int | None = None, stride: int | None = None, occlusion_batch: int | None = None,
                      repeat: int = 15, budget_s: float = 8.0) -> dict[str, dict[str, Any]]:
    """Seconds of `cvdemo.explain.explain` and of the same Captum method called directly, per method.

    Both sides explain the same image, target and settings (batch sizes: ours' defaults for the device,
    `cvdemo.explain.default_batch`, unless given), in the order ours, Captum, Captum, ours, ... up to
    `repeat` times each or until `budget_s` seconds went into the method (at least twice each, so each
    side runs once first and once second); the best time of each side is kept, which filters out the
    other processes of a shared machine better than a mean. `ratio` compares
    wall times (what a user waits), `cpu_ratio` CPU times (steadier on a busy machine). Captum gets the
    model with frozen parameters (its fastest case) and the target; `explain` finds the predicted class
    itself. `difference` is max |ours - Captum| /
    max |Captum| of the two maps reduced to ours' form (None for SmoothGrad: the noise draws differ).
    Captum's guided backpropagation rectifies nn.ReLU modules only, ours every activation module, so
    on a ReLU6 network (EfficientNet-Lite0) the guided maps differ by design.
    """
    import warnings

    from captum.attr import (
        GuidedBackprop,
        GuidedGradCam,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )

    from cvdemo.explain import default_batch, explain

    model.eval()
    with torch.no_grad():
        target = int(model(x).argmax())
    internal_batch_size = internal_batch_size or default_batch(x.device)
    occlusion_batch = occlusion_batch or default_batch(x.device, occlusion=True)
    c, h, w = x.shape[1:]
    win = window or max(1, min(h, w) // 7)
    step = stride or max(1, win // 2)
    sigma = stdev * float(x.max() - x.min())  # ours' stdev is a fraction of the input range, Captum's absolute
    module = model.get_submodule(layer)

    def probabilities(z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(z), dim=1)

    cases: dict[str, tuple[str, dict[str, Any], Callable[[], Any]]] = {
        "saliency": ("Saliency", {}, lambda: Saliency(model).attribute(x, target=target, abs=True).amax(1)[0]),
        "integrated_gradients": (
            "IntegratedGradients", {"n_steps": n_steps, "internal_batch_size": internal_batch_size},
            lambda: IntegratedGradients(model).attribute(
                x, baselines=0.0, target=target, n_steps=n_steps, method="gausslegendre",
                internal_batch_size=internal_batch_size).sum(1)[0]),
        "smoothgrad": (
            "NoiseTunnel(Saliency)", {"n_samples": n_samples, "stdev": stdev,
                                      "internal_batch_size": internal_batch_size},
            lambda: NoiseTunnel(Saliency(model)).attribute(
                x, nt_type="smoothgrad", nt_samples=n_samples, nt_samples_batch_size=internal_batch_size, stdevs=sigma,
                target=target, abs=True).amax(1)[0]),
        "occlusion": (
            "Occlusion", {"window": win, "stride": step, "internal_batch_size": occlusion_batch},
            lambda: Occlusion(probabilities).attribute(
                x, sliding_window_shapes=(c, win, win), strides=(c, step, step), baselines=0.0, target=target,
                perturbations_per_eval=occlusion_batch)[0, 0]),
        "guided_backprop": ("GuidedBackprop", {},
                            lambda: GuidedBackprop(model).attribute(x, target=target).abs().amax(1)[0]),
        "gradcam": ("LayerGradCam", {"layer": layer}, lambda: LayerAttribution.interpolate(
            LayerGradCam(model, module).attribute(x, target=target, relu_attributions=True), (h, w),
            "bilinear")[0, 0]),
        "guided_gradcam": ("GuidedGradCam", {"layer": layer}, lambda: GuidedGradCam(model, module).attribute(
            x, target=target, interpolate_mode="bilinear").abs().amax(1)[0]),
    }
    results: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns about the hooks it sets and the grads it enables
        explain(model, x, "saliency")  # warm-up: thread pool, allocator, kernels
        cases["saliency"][2]()
        for name, (captum_name, options, captum_fn) in cases.items():
            ours, captum = _Best(functools.partial(_explain_map, model, x, name, options)), _Best(captum_fn)
            started = time.perf_counter()
            for i in range(repeat):  # ABBA..., so a burst of load elsewhere or a cold start hits both sides
                if i >= 2 and time.perf_counter() - started > budget_s:
                    break
                for side in ((ours, captum) if i % 2 == 0 else (captum, ours)):
                    side()
            results[name] = {"captum": captum_name, "ours_s": ours.wall, "captum_s": captum.wall,
                             "ratio": captum.wall / ours.wall, "ours_cpu_s": ours.cpu, "captum_cpu_s": captum.cpu,
                             "cpu_ratio": captum.cpu / ours.cpu,
                             "difference": None if name == "smoothgrad" else _relative_difference(ours.result,
                                                                                                  captum.result)}
    return results


def ig_peak_memory(n_steps: int, internal_batch_size: int, size: int = 224) -> float | None:
    """Peak resident memory (MiB) that one `explain(..., "integrated_gradients")` call adds on top of the
    loaded model, measured in a fresh process: the kernel's high-water mark (VmHWM) is reset through
    /proc/self/clear_refs after loading, and read after the call. None where /proc does not allow it."""
    import json

    code = (f"from cvdemo.bench import _ig_memory_child; _ig_memory_child({int(n_steps)}, "
            f"{int(internal_batch_size)}, {int(size)})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"the memory probe failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"]


def _proc_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def _ig_memory_child(n_steps: int, internal_batch_size: int, size: int) -> None:
    import json

    from cvdemo.explain import explain

    model, x, _ = explain_subject(size)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
        before = _proc_kib("VmRSS")
    except OSError:
        print(json.dumps({"peak_mib": None}))
        return
    explain(model, x, "integrated_gradients", n_steps=n_steps, internal_batch_size=internal_batch_size)
    print(json.dumps({"peak_mib": (_proc_kib("VmHWM") - before) / 1024}))


@benchmark("explain")
def bench_explain(device: torch.device, size: int = 224, n_steps: int = 50, repeat: int = 15) -> dict[str, Any]:
    """Each attribution method of `explain` on one size x size image with pretrained EfficientNet-Lite0 vs
    calling Captum directly (ratio = Captum's seconds / ours, so > 1 means ours is faster; the headline
    `ratio` is the worst method's wall-time ratio, `cpu_ratio` the worst CPU-time ratio); occlusion with
    ours' default number of occluded copies per forward pass vs one; integrated gradients' peak memory
    with ours' default internal batch vs all n_steps interpolated images at once."""
    from cvdemo.explain import default_batch, explain

    model, x, layer = explain_subject(size)
    model.to(device)
    x = x.to(device)
    methods = explain_vs_captum(model, x, layer=layer, n_steps=n_steps, repeat=repeat)
    one = _Best(lambda: explain(model, x, "occlusion", internal_batch_size=1))
    one()  # ~170 forward passes of one image: once
    batch = default_batch(device)
    batched_mib = ig_peak_memory(n_steps, batch, size) if device.type == "cpu" else None
    all_mib = ig_peak_memory(n_steps, n_steps, size) if device.type == "cpu" else None
    occlusion = methods["occlusion"]
    return {"model": "efficientnet_lite0", "size": size, "ig_steps": n_steps, "methods": methods,
            "occlusion_batch": default_batch(device, occlusion=True), "occlusion_batched_s": occlusion["ours_s"],
            "occlusion_one_per_forward_s": one.wall, "occlusion_batched_ratio": one.wall / occlusion["ours_s"],
            "occlusion_batched_cpu_ratio": one.cpu / occlusion["ours_cpu_s"],
            "ig_batch": batch, "ig_peak_mib_batched": batched_mib, "ig_peak_mib_all_steps": all_mib,
            "ig_memory_ratio": all_mib / batched_mib if batched_mib and all_mib else None,
            "memory_method": "peak resident set above the loaded model, fresh process per variant (VmHWM reset)",
            "cpu_ratio": min(m["cpu_ratio"] for m in methods.values()),
            "ratio": min(m["ratio"] for m in methods.values())}


def tsne_points(n: int = 5000, seed: int = 0) -> tuple[Any, Any]:
    """(float32 (n, 64), int labels (n,)): scikit-learn's 8x8 digits and copies shifted by one pixel in
    each direction (zero fill), n of them chosen at random without repeats. Real pixels, real classes."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images
    variants, labels = [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = np.zeros_like(images)
            ys, yd = (slice(0, 8 - dy), slice(dy, 8)) if dy >= 0 else (slice(-dy, 8), slice(0, 8 + dy))
            xs, xd = (slice(0, 8 - dx), slice(dx, 8)) if dx >= 0 else (slice(-dx, 8), slice(0, 8 + dx))
            shifted[:, yd, xd] = images[:, ys, xs]
            variants.append(shifted.reshape(len(images), 64))
            labels.append(digits.target)
    pool, pool_labels = np.concatenate(variants), np.concatenate(labels)
    pick = np.random.default_rng(seed).choice(len(pool), size=min(n, len(pool)), replace=False)
    return pool[pick].astype(np.float32), pool_labels[pick]


@benchmark("embed")
def bench_embed(device: torch.device, n: int = 5000, threads: int = 2) -> dict[str, Any]:
    """t-SNE of n points of 64 dimensions with `cvdemo.embed.tsne` (backend auto: openTSNE when installed,
    Barnes-Hut below 10,000 points, after PCA to 50 dimensions) vs scikit-learn's TSNE called directly,
    both on `threads` threads; also each picture's leave-one-out 5-NN accuracy (same quality?)."""
    from sklearn.manifold import TSNE

    from cvdemo.embed import knn_accuracy, tsne

    x, labels = tsne_points(n)
    start = time.perf_counter()
    ours, info = tsne(x, 2, n_jobs=threads)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    ref = TSNE(n_components=2, perplexity=30.0, random_state=0, init="pca", learning_rate="auto",
               n_jobs=threads).fit_transform(x)
    sklearn_s = time.perf_counter() - start
    return {"points": len(x), "dims": x.shape[1], "threads": threads, "ours_backend": info["backend"],
            "ours_s": ours_s, "sklearn_s": sklearn_s, "ours_knn5": knn_accuracy(ours, labels),
            "sklearn_knn5": knn_accuracy(ref, labels), "ratio": sklearn_s / ours_s}


# The textbook script the classroom benchmark compares against: sklearn digits, LeNet, Adam 1e-3, batch 64.
_TEXTBOOK_DIGITS = """
import os, torch, torch.nn as nn, torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
d = load_digits(); x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16; y = torch.tensor(d.target)
x = F.interpolate(x, size=32, mode="bilinear")
xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
dev = torch.device(os.environ.get("CVDEMO_BENCH_DEVICE", "cpu"))
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
                      nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10)).to(dev)
opt = torch.optim.Adam(model.parameters(), 1e-3)
for epoch in range(26):
    perm = torch.randperm(len(xtr))
    for i in range(0, len(xtr), 64):
        idx = perm[i:i + 64]
        opt.zero_grad(); F.cross_entropy(model(xtr[idx].to(dev)), ytr[idx].to(dev)).backward(); opt.step()
with torch.no_grad():
    print((model(xte.to(dev)).argmax(1).cpu() == yte).float().mean().item())
"""


def run(names: list[str], device: torch.device) -> dict[str, Any]:
    results = {}
    for name in names:
        start = time.perf_counter()
        results[name] = {**BENCHMARKS[name](device), "bench_seconds": round(time.perf_counter() - start, 1)}
    return results
