"""Benchmark of `cvdemo.explain` against calling Captum directly, and of its peak memory."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvdemo.bench._timing import Best


def explain_subject(size: int = 224, seed: int = 0) -> tuple[nn.Module, torch.Tensor, str]:
    """(ImageNet-pretrained EfficientNet-Lite0 in eval mode with frozen parameters, one smooth random colour
    image as model input float (1, 3, size, size), the registry's Grad-CAM layer). Offline."""
    import torch.nn.functional as F

    from cvdemo.models import create_model, get_spec

    spec = get_spec("efficientnet_lite0")
    model = create_model(spec.name, None, pretrained=True).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    image = F.interpolate(torch.rand(1, 3, 14, 14, generator=g), size=size, mode="bicubic").clamp(0, 1)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in spec.normalization)
    return model, (image - mean) / std, spec.cam_layer


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
    `explain` dispatches to these same Captum classes; on a ReLU6 network (EfficientNet-Lite0) it first
    swaps each ReLU6 for a ReLU + clamp on a copy (`cvdemo.explain.activations`) so that Captum's guided
    rule applies there too; Captum's side gets that swapped model, made once outside the timing.
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
    from cvdemo.explain.activations import captum_ready

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
    # The guided methods get the activation swap `explain` makes (ReLU6 -> ReLU + clamp, on a copy), made
    # once here: the same maps, and the ratio shows what making it on every call costs.
    guided_model = captum_ready(model, "guided")
    guided_module = guided_model.get_submodule(layer)

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
                            lambda: GuidedBackprop(guided_model).attribute(x, target=target).abs().amax(1)[0]),
        "gradcam": ("LayerGradCam", {"layer": layer}, lambda: LayerAttribution.interpolate(
            LayerGradCam(model, module).attribute(x, target=target, relu_attributions=True), (h, w),
            "bilinear")[0, 0]),
        "guided_gradcam": ("GuidedGradCam", {"layer": layer}, lambda: GuidedGradCam(guided_model, guided_module).attribute(
            x, target=target, interpolate_mode="bilinear").abs().amax(1)[0]),
    }
    results: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns about the hooks it sets and the grads it enables
        explain(model, x, "saliency")  # warm-up: thread pool, allocator, kernels
        cases["saliency"][2]()
        for name, (captum_name, options, captum_fn) in cases.items():
            ours, captum = Best(functools.partial(_explain_map, model, x, name, options)), Best(captum_fn)
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
    code = (f"from cvdemo.bench.explain import ig_memory_child; ig_memory_child({int(n_steps)}, "
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


def ig_memory_child(n_steps: int, internal_batch_size: int, size: int) -> None:
    """The fresh process of `ig_peak_memory`: prints {"peak_mib": MiB or None} as one JSON line."""
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
    one = Best(lambda: explain(model, x, "occlusion", internal_batch_size=1))
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
