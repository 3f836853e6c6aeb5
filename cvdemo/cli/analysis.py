"""Analysis commands: `cvdemo evaluate`, `embed`, `explain` and `filters`.

    cvdemo evaluate RUN [--split test] [--plots DIR] --json
    cvdemo embed RUN --method pca|tsne [--dims 2|3] [--layer L] [--limit N] --out points.csv [--plot p.png]
    cvdemo explain (RUN | --model M --pretrained) IMAGE --method gradcam|...|all --out overlay.png
    cvdemo filters (RUN | --model M --pretrained) --out filters.png [--image IMG --layer L --maps-out maps.png]

Each prints a short human summary, or with --json one JSON object as the last line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvdemo import runs
from cvdemo.cli._common import CHECKPOINTS, SPLITS, TSNE_BACKENDS, Subparsers, command, emit
from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError, CvdemoError

if TYPE_CHECKING:
    from cvdemo.predict import Classifier


def _pct(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.1%}"


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "evaluate",
                "every metric of a run on its test (or val/train) split, with figures if asked")
    p.add_argument("run", help="a run folder or run id")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--checkpoint", default="best", choices=CHECKPOINTS)
    p.add_argument("--plots", metavar="DIR", help="write confusion, per-class, reliability and most-wrong PNGs here")
    p.add_argument("--most-wrong", type=int, default=16, help="how many confidently wrong samples to list")
    p.add_argument("--refresh", action="store_true", help="recompute the stored predictions")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    p.set_defaults(func=cmd_evaluate)

    p = command(subparsers, "embed", "PCA or t-SNE of a run's features, as a CSV of points (and a picture)")
    p.add_argument("run", help="a run folder or run id")
    p.add_argument("--method", default="pca", choices=("pca", "tsne"))
    p.add_argument("--dims", type=int, default=2, choices=(2, 3))
    p.add_argument("--layer", help="penultimate (default), logits, or a dotted layer path such as features.3")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--limit", type=int, help="at most N samples, stratified by class with --seed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity")
    p.add_argument("--backend", default="auto", choices=TSNE_BACKENDS, help="t-SNE implementation")
    p.add_argument("--pretrained-backbone", action="store_true",
                   help="features of the architecture's ImageNet weights instead of the run's (same samples)")
    p.add_argument("--checkpoint", default="best", choices=CHECKPOINTS)
    p.add_argument("--out", required=True, help="CSV file: x, y[, z], true, predicted, index")
    p.add_argument("--plot", help="PNG scatter plot")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_embed)

    p = command(subparsers, "explain", "an attribution heat map of why a model predicted a class for an image")
    p.add_argument("items", nargs="*", metavar="RUN_OR_IMAGE", help="RUN IMAGE or, with --model, IMAGE")
    p.add_argument("--list", action="store_true", help="print the method catalogue and exit")
    p.add_argument("--model", help="a pretrained network instead of a run (e.g. efficientnet_lite0)")
    p.add_argument("--pretrained", action="store_true")
    p.add_argument("--method", help="a method of the catalogue (see --list), or all (a grid of every method, "
                                    "one row per family)")
    p.add_argument("--target", help="class name or index to explain (default: the predicted class)")
    p.add_argument("--out", help="PNG: the overlay, or the grid for --method all")
    p.add_argument("--alpha", type=float, default=0.5, help="heat-map opacity, 0 to 1")
    p.add_argument("--layer", help="Grad-CAM layer (default: the architecture's last feature map)")
    p.add_argument("--steps", type=int, help="integrated gradients: interpolation steps (default 32)")
    p.add_argument("--samples", type=int, help="noise methods, gradient_shap, shapley: samples")
    p.add_argument("--base", help="smoothgrad, smoothgrad_sq, vargrad: the method to smooth (default saliency)")
    p.add_argument("--baseline", help="reference methods: black, blurred, noise or a number (default 0)")
    p.add_argument("--window", type=int, help="occlusion: square side in pixels (default side/7)")
    p.add_argument("--no-faithfulness", action="store_true",
                   help="skip the deletion, infidelity, sensitivity and ROAD scores")
    p.add_argument("--insertion", action="store_true", help="also the insertion score (more forward passes)")
    p.add_argument("--sanity", action="store_true",
                   help="also run the model-randomisation check (Spearman correlation with a random-weight copy)")
    p.set_defaults(func=cmd_explain)

    p = command(subparsers, "filters", "the first layer's filters, and the feature maps of an image at a layer")
    p.add_argument("run", nargs="?", help="a run folder or run id (or use --model M --pretrained)")
    p.add_argument("--model", help="a pretrained network instead of a run")
    p.add_argument("--pretrained", action="store_true")
    p.add_argument("--out", required=True, help="PNG grid of the first-layer filters")
    p.add_argument("--image", help="an image whose feature maps to draw")
    p.add_argument("--layer", help="layer for the feature maps (default: the first convolution)")
    p.add_argument("--maps-out", help="PNG grid of the feature maps")
    p.set_defaults(func=cmd_filters)


# -- evaluate ------------------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    from cvdemo import plots
    from cvdemo.evaluate import evaluate_run

    if args.most_wrong < 0:
        raise ConfigError(f"--most-wrong must be 0 or more, got {args.most_wrong}")
    run_dir = runs.resolve_run(args.run)
    result = evaluate_run(run_dir, args.split, args.checkpoint, refresh=args.refresh, most_wrong=args.most_wrong,
                          device=args.device)
    figures = plots.write_evaluation_plots(result, Path(args.plots)) if args.plots else []
    payload = {"run": str(run_dir), **result.to_dict(), "plots": [str(p) for p in figures]}
    names = result.classes
    lines = [f"run {run_dir.name}: {result.predictions.split} split, {result.n} images "
             f"(checkpoint {result.predictions.checkpoint})",
             f"top-1 {_pct(result.top1)}  top-5 {_pct(result.top5)}  loss {result.loss:.4f}  "
             f"macro F1 {result.macro_f1:.3f}  weighted F1 {result.weighted_f1:.3f}  ECE {result.ece:.3f}",
             "", f"{'class':<24} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}"]
    for r in result.per_class:
        lines.append(f"{r['class'][:24]:<24} {r['precision']:>9.3f} {r['recall']:>7.3f} {r['f1']:>6.3f} "
                     f"{r['support']:>8}")
    if result.most_wrong:
        lines += ["", "most confidently wrong (sample: true -> predicted, confidence):"]
        lines += [f"  #{w['index']}: {names[w['true']]} -> {names[w['pred']]} ({w['confidence']:.1%})"
                  for w in result.most_wrong[:10]]
    lines += [f"figure: {p}" for p in figures]
    emit(args, payload, "\n".join(lines))
    return 0


# -- embed ---------------------------------------------------------------------------------------

def cmd_embed(args: argparse.Namespace) -> int:
    from cvdemo.embed import embed_run

    run_dir = runs.resolve_run(args.run)
    emb = embed_run(run_dir, method=args.method, dims=args.dims, layer=args.layer, split=args.split,
                    limit=args.limit, seed=args.seed, perplexity=args.perplexity, backend=args.backend,
                    backbone="pretrained" if args.pretrained_backbone else "run", checkpoint=args.checkpoint,
                    device=args.device)
    csv_path = emb.to_csv(args.out)
    plot_path = None
    if args.plot:
        from cvdemo import plots

        plot_path = plots.embedding_plot(emb, args.plot)
    payload = {"run": str(run_dir), **emb.to_dict(), "out": str(csv_path),
               "plot": str(plot_path) if plot_path else None}
    if emb.tsne is not None:
        detail = f"perplexity {emb.tsne['perplexity']:g}, {emb.tsne['backend']}"
    else:
        detail = f"explained variance {', '.join(f'{v:.1%}' for v in emb.explained_variance or [])}"
    human = (f"{emb.method} of {len(emb.labels)} {emb.layer} feature vectors ({emb.features}-D) to {emb.dims}-D: "
             f"{detail}; 5-NN accuracy {emb.knn5:.1%} "
             f"({emb.seconds:.1f} s)\npoints: {csv_path}" + (f"\nfigure: {plot_path}" if plot_path else ""))
    emit(args, payload, human)
    return 0


# -- explain -------------------------------------------------------------------------------------

def load_classifier(items: list[str], model: str | None, pretrained: bool, needed: int,
                    what: str) -> tuple[Classifier, str, list[str]]:
    """(Classifier, architecture name, remaining items) from `RUN ITEMS...` or `--model M --pretrained ITEMS...`."""
    from cvdemo.predict import Classifier

    if model:
        if not pretrained:
            raise CvdemoError("--model without a run needs --pretrained (an untrained network shows noise)")
        if len(items) != needed:
            raise CvdemoError(f"with --model give {what}")
        return Classifier.pretrained(model), model, items
    if len(items) != needed + 1:
        raise CvdemoError(f"give a run and {what}, or --model NAME --pretrained and {what}")
    run_dir = runs.resolve_run(items[0])
    arch = RunConfig.from_json_file(run_dir / "config.json").model.name
    return Classifier.from_run(run_dir), arch, items[1:]


def resolve_target(text: str | None, classes: list[str]) -> int | None:
    """A class given by name (exact, then case-insensitive) or by index; None = the predicted class."""
    if text is None:
        return None
    if text in classes:
        return classes.index(text)
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.strip().isdigit() and int(text) < len(classes):
        return int(text)
    raise ConfigError(f"unknown class {text!r}: give a class name or an index from 0 to {len(classes) - 1}")


def method_options(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The command-line flags that apply to one method, as `explain` options."""
    from cvdemo.explain import accepted_options
    from cvdemo.explain.catalogue import NOISE_TYPES

    accepted = set(accepted_options(method))
    if method in NOISE_TYPES:
        accepted |= set(accepted_options(args.base or "saliency"))
    baseline: str | float | None = getattr(args, "baseline", None)
    try:
        baseline = float(baseline) if baseline is not None else None
    except ValueError:
        pass
    flags = {"layer": args.layer, "n_steps": args.steps, "n_samples": args.samples, "base": args.base,
             "window": args.window, "baseline": baseline}
    return {k: v for k, v in flags.items() if v is not None and k in accepted}


def print_catalogue() -> int:
    """`cvdemo explain --list`: the method catalogue, one line per method, grouped by family."""
    from cvdemo.explain import FAMILY_NOTES, by_family

    for family, methods in by_family().items():
        print(f"{family}: {FAMILY_NOTES[family]}")
        for m in methods:
            needs = ", ".join(w for w, yes in (("baseline", m.baseline), ("conv layer", m.conv_layer)) if yes)
            print(f"  {m.name:<21} {m.library}.{m.library_class:<21} {m.cost:<6} {needs or '-':<20} {m.shows}")
            print(f"  {'':<21} {m.display}: {m.description}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from cvdemo import plots
    from cvdemo.explain import METHODS, explain_image, faithfulness, model_view, overlay, randomization_check
    from cvdemo.predict import read_image_file

    if args.list:
        return print_catalogue()
    if not args.method or not args.out or not args.items:
        raise ConfigError("explain needs RUN IMAGE (or --model M IMAGE), --method and --out; --list shows the methods")
    if args.method != "all" and args.method not in METHODS:
        raise ConfigError(f"unknown explanation method {args.method!r}: choose one of {', '.join(METHODS)} or all")
    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha must lie between 0 and 1, got {args.alpha}")
    clf, arch, rest = load_classifier(list(args.items), args.model, args.pretrained, 1, "one image")
    image = read_image_file(rest[0])
    target = resolve_target(args.target, clf.classes)
    x = clf.to_input(image)
    view = model_view(clf, image)
    view = plots.display_size(view)
    out = Path(args.out)
    methods = list(METHODS) if args.method == "all" else [args.method]
    results, skipped = [], {}
    for method in methods:
        try:
            exp = explain_image(clf, image, method, target, arch=arch, **method_options(args, method))
        except CvdemoError as e:
            if args.method != "all":
                raise
            skipped[method] = str(e)
            continue
        row: dict[str, Any] = {"method": method, "seconds": round(exp.seconds, 4)}
        if not args.no_faithfulness:
            light = {"random_maps": 1, "infidelity_samples": 4, "sensitivity_samples": 2, "road_percentiles": (30, 70)}
            f = faithfulness(clf.model, x, exp, insertion=args.insertion,  # every method: lighter checks
                             **(light if args.method == "all" else {"random_maps": 2}))
            row.update(deletion_auc=f.deletion_auc, deletion_random_auc=f.deletion_random_auc)
            if f.insertion_auc is not None:
                row.update(insertion_auc=f.insertion_auc, insertion_random_auc=f.insertion_random_auc)
            row.update({k: v for k, v in (("infidelity", f.infidelity), ("sensitivity", f.sensitivity),
                                          ("road", f.road)) if v is not None})
        if args.sanity:
            row["randomization_spearman"] = randomization_check(clf.model, x, method, exp.target,
                                                                **method_options(args, method))["spearman"]
        results.append((exp, row))
    if not results:
        raise CvdemoError(f"no method could explain this model: {'; '.join(skipped.values())}")
    first = results[0][0]
    name = clf.classes[first.target]
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.method == "all":
        plots.explain_grid_plot(view, [e for e, _ in results], name, out, alpha=args.alpha)
    else:
        overlay(view, first.map, alpha=args.alpha).save(out)
    payload: dict[str, Any] = {"method": args.method, "target": first.target, "target_class": name,
                               "prob": first.target_prob, "out": str(out), "source": clf.source}
    if args.method == "all":
        payload.update(seconds=sum(r["seconds"] for _, r in results), methods=[r for _, r in results],
                       skipped=skipped)
    else:
        payload.update({k: v for k, v in results[0][1].items() if k != "method"})
        payload.setdefault("deletion_auc", None)
    lines = [f"{clf.source}: explaining '{name}' (p = {first.target_prob:.1%})"]
    for _, r in results:
        extra = (f", deletion AUC {r['deletion_auc']:.3f} (random maps {r['deletion_random_auc']:.3f}; lower is better)"
                 if "deletion_auc" in r else "")
        extra += "".join(f", {name} {r[key]:.3g}" for key, name in (("infidelity", "infidelity"),
                                                                    ("sensitivity", "sensitivity"), ("road", "ROAD"))
                         if key in r)
        lines.append(f"  {r['method']:<21} {r['seconds']:.2f} s{extra}")
    lines += [f"  {m:<21} skipped: {why}" for m, why in skipped.items()]
    if any("infidelity" in r or "road" in r for _, r in results):
        lines.append("  infidelity (the map's miss at predicting the class's change under slight noise) and "
                     "sensitivity (how much the map moves when the image barely does): lower is better; "
                     "ROAD (removing the hottest pixels hurts more than removing the coldest): higher is better")
    lines.append(f"picture: {out}")
    emit(args, payload, "\n".join(lines))
    return 0


# -- filters -------------------------------------------------------------------------------------

def cmd_filters(args: argparse.Namespace) -> int:
    from cvdemo import plots
    from cvdemo.filters import feature_maps, first_layer_filters
    from cvdemo.predict import read_image_file

    if (args.image is None) != (args.maps_out is None):
        raise ConfigError("--image and --maps-out go together: the feature maps of that image are drawn to that file")
    if args.run and args.model:
        raise ConfigError(f"give a run ({args.run}) or --model {args.model} --pretrained, not both: the filters "
                          "drawn are one network's")
    if not args.run and not args.model:
        raise ConfigError("say whose filters to draw: a run folder or run id (see `cvdemo runs`), or "
                          "--model NAME --pretrained")
    items = [args.run] if args.run else []
    clf, arch, _ = load_classifier(items, args.model, args.pretrained, 0, "no image")
    layer, weights = first_layer_filters(clf.model)
    out = plots.filters_plot(weights, args.out, f"{arch}: the {len(weights)} filters of its first layer "
                                                f"'{layer}' ({'x'.join(map(str, weights.shape[1:]))})")
    payload: dict[str, Any] = {"out": str(out), "layer": layer, "filters": int(weights.shape[0]),
                               "filter_shape": list(weights.shape[1:]), "source": clf.source}
    lines = [f"{len(weights)} filters of '{layer}' ({'x'.join(map(str, weights.shape[1:]))}): {out}"]
    if args.image:
        from cvdemo.explain import model_view

        image = read_image_file(args.image)
        name, maps = feature_maps(clf.model, clf.to_input(image), args.layer)
        view = model_view(clf, image).resize((clf.image_size, clf.image_size))
        shown = min(len(maps), 64)
        maps_out = plots.feature_maps_plot(maps, args.maps_out, f"{arch}: feature maps at '{name}' "
                                           f"({shown} of {len(maps)} channels, {maps.shape[1]}x{maps.shape[2]})",
                                           image=view)
        payload.update(maps_out=str(maps_out), maps_layer=name, maps=int(len(maps)), map_size=list(maps.shape[1:]))
        lines.append(f"{len(maps)} feature maps of '{name}' ({maps.shape[1]}x{maps.shape[2]}): {maps_out}")
    emit(args, payload, "\n".join(lines))
    return 0
