"""The section of one run: headline metrics, curves, settings, confusion, per-class table, mistakes,
embedding and Grad-CAM explanations, each part saying why when it cannot be made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.evaluate import Evaluation, evaluate_run
from cvdemo.report import _html as h
from cvdemo.report.options import ReportOptions


def run_label(run_dir: Path, config: dict[str, Any] | None = None) -> str:
    """The run's own name when it has one, else its id."""
    config = config if config is not None else runs.read_json_or_empty(Path(run_dir) / "config.json")
    return config.get("name") or Path(run_dir).name


class RunSection:
    """Builds the section of one run; figures are drawn into a temporary folder and inlined."""

    def __init__(self, run_dir: Path, tmp: Path, options: ReportOptions, anchor: str):
        self.run_dir = Path(run_dir)
        self.tmp = tmp
        self.options = options
        self.anchor = anchor
        self.config = runs.read_json_or_empty(self.run_dir / "config.json")
        self.summary = runs.read_json_or_empty(self.run_dir / "summary.json")
        self.status = runs.read_status(self.run_dir)
        self.metrics = runs.read_metrics(self.run_dir)
        self.label = run_label(self.run_dir, self.config)
        self._evaluation: Evaluation | None = None
        self._figures: dict[str, Path] | None = None

    def png(self, name: str) -> Path:
        return self.tmp / f"{self.anchor}-{name}.png"

    def evaluation(self) -> Evaluation:
        if self._evaluation is None:
            self._evaluation = evaluate_run(self.run_dir, self.options.split, self.options.checkpoint,
                                            most_wrong=self.options.gallery, device=self.options.device)
        return self._evaluation

    def html(self) -> str:
        model = self.config.get("model", {})
        data = self.config.get("data", {})
        facts = [f"<b>{h.e(model.get('name', '?'))}</b>{' (ImageNet-pretrained)' if model.get('pretrained') else ''}"
                 f" on <b>{h.e(h.data_name(data.get('source', '?')))}</b>",
                 f"state: {h.e(self.status.get('state', '?'))}"
                 + (f" ({h.e(self.status.get('message'))})" if self.status.get("message") else "")]
        if self.summary.get("epochs") is not None:
            facts.append(f"{h.e(self.summary['epochs'])} epochs in {h.e(round(self.summary.get('seconds', 0)))} s "
                         f"on {h.e(self.summary.get('device', '?'))}")
        if self.summary.get("params_total") is not None:
            facts.append(f"{self.summary['params_total']:,} parameters")
        parts = [
            h.part("Did it learn?", self.health),
            h.part("Headline metrics", self.headline),
            h.part("Training curves", self.curves),
            h.part("Configuration", self.configuration),
            h.part("Confusion matrix", self.confusion),
            h.part("Per-class results", self.per_class),
            h.part("Most confidently wrong", self.most_wrong),
            h.part("Embedding (PCA of the features)", self.embedding),
        ]
        if self.options.explain > 0:
            parts.append(h.part(f"Why? {self.method_names()} explanations", self.explanations))
        if self.options.robustness:
            parts.append(h.part("Robustness to adversarial noise", self.robustness))
        return (f'<section class="run" id="{h.e(self.anchor)}"><h2>{h.e(self.label)}</h2>'
                f'<p class="facts">{" · ".join(facts)}'
                + (f'<br><span class="muted">run {h.e(self.run_dir.name)}</span>' if self.label != self.run_dir.name
                   else "") + "</p>"
                + "".join(parts) + "</section>")

    def method_names(self) -> str:
        """'Grad-CAM', 'Grad-CAM and Saliency', 'Grad-CAM, Saliency and LRP': the explanation methods' names."""
        from cvdemo.explain import BY_NAME

        names = [BY_NAME[m].display for m in self.options.explain_methods]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

    def headline(self) -> str:
        r = self.evaluation()
        p = r.predictions
        cards = [("top-1", h.pct(r.top1)), ("top-2", h.pct(r.topk.get(2))), ("top-5", h.pct(r.top5)),
                 ("macro-F1", h.num(r.macro_f1)), ("loss", h.num(r.loss)), ("calibration error", h.num(r.ece))]
        boxes = "".join(f'<div class="card"><div class="value">{v}</div><div class="label">{h.e(k)}</div></div>'
                        for k, v in cards)
        best = "chosen on the validation split" if p.checkpoint == "best" else "after the last epoch"
        held_out = " — images no training step and no checkpoint choice ever saw" if p.split == "test" else ""
        return (f'<div class="cards">{boxes}</div>'
                + h.note(f"Measured on the <b>{h.e(p.split)}</b> split ({r.n} images{held_out}) with the "
                        f"{h.e(p.checkpoint)} checkpoint ({best}). Calibration error: ECE over 15 bins."))

    def health(self) -> str:
        """The verdict on the run (cvdemo.health): diverged, unstable, did not learn, overfitting or healthy."""
        from cvdemo.health import run_health

        verdict = run_health(self.run_dir)
        return (f'<p class="health {h.e(verdict.severity)}"><b>{h.e(verdict.verdict.capitalize())}.</b> '
                f"{h.e(verdict.text)}</p>")

    def curves(self) -> str:
        from cvdemo import plots

        if not any(m.get("kind") == "epoch" or (m.get("kind") == "step" and m.get("loss") is not None)
                   for m in self.metrics):  # step-level training loss alone is drawn: a run that diverged early
            return h.note("No training step was recorded, so there are no curves.")
        path = plots.curves_plot({self.label: self.metrics}, self.png("curves"))
        return h.figure(path.read_bytes(), "training curves",
                       "Training loss per logged step, validation loss and accuracies per epoch.")

    def configuration(self) -> str:
        defaults = RunConfig().to_dict()
        groups = []
        for section in ("data", "model", "train"):
            items = []
            for key, value in self.config.get(section, {}).items():
                default = defaults.get(section, {}).get(key)
                changed = (list(default) if isinstance(default, tuple) else default) != value
                if isinstance(value, list):
                    value = ", ".join(map(str, value))
                text = "–" if value in (None, "") else value
                css = ' class="changed"' if changed else ""
                items.append(f"<li{css}><span>{h.e(key.replace('_', ' '))}</span> <b>{h.e(text)}</b></li>")
            groups.append(f"<li class=\"group\">{h.e(section)}</li>{''.join(items)}")
        return (f'<ul class="config">{"".join(groups)}</ul>'
                + h.note("Highlighted settings differ from cvdemo's defaults. This run's config.json trains it "
                        "again: <code>cvdemo train --config config.json</code>."))

    def figures(self) -> dict[str, Path]:
        """The evaluation figures `cvdemo evaluate --plots` draws (confusion, per_class, reliability, most_wrong)."""
        if self._figures is None:
            from cvdemo.plots import write_evaluation_plots

            paths = write_evaluation_plots(self.evaluation(), self.tmp / f"{self.anchor}-evaluation")
            self._figures = {p.stem: p for p in paths}
        return self._figures

    def confusion(self) -> str:
        return h.figure(self.figures()["confusion"].read_bytes(), "confusion matrix",
                       "Rows: the true class; columns: the predicted class. Shading: the share of the true "
                       "class's images; numbers: image counts.", "narrow")

    def per_class(self) -> str:
        r = self.evaluation()
        rows = [[h.e(c["class"]), h.num(c["precision"]), h.num(c["recall"]), h.num(c["f1"]), h.e(c["support"])]
                for c in r.per_class]
        return (h.table(["class", "precision", "recall (per-class accuracy)", "F1", "images"], rows, "numbers")
                + h.note(f"Macro-F1 {h.num(r.macro_f1)} (the mean of the F1 column), weighted F1 "
                        f"{h.num(r.weighted_f1)}."))

    def most_wrong(self) -> str:
        r = self.evaluation()
        if not r.most_wrong:
            return h.note(f"No image of the {h.e(r.predictions.split)} split is misclassified.")
        return h.figure(self.figures()["most_wrong"].read_bytes(), "most confidently wrong images",
                       f"The {len(r.most_wrong)} misclassified images the model was surest about: sample number, "
                       "true class, predicted class and the predicted class's probability.")

    def embedding(self) -> str:
        from cvdemo import plots
        from cvdemo.embed import embed_run

        self.evaluation()  # stores the features embed_run reuses
        emb = embed_run(self.run_dir, method="pca", dims=2, split=self.options.split,
                        limit=self.options.embed_limit, checkpoint=self.options.checkpoint,
                        device=self.options.device)
        path = plots.embedding_plot(emb, self.png("embedding"))
        variance = " and ".join(f"{v:.1%}" for v in emb.explained_variance or [])
        return h.figure(path.read_bytes(), "PCA of the penultimate-layer features",
                       f"{len(emb.labels)} images of the {h.e(emb.split)} split, their {emb.features}-dimensional "
                       f"penultimate-layer features projected on the two principal axes ({variance} of the "
                       f"variance). A 5-nearest-neighbour vote in this picture is right for {h.pct(emb.knn5)} of "
                       "them.", "narrow")

    def explanation_picks(self) -> list[int]:
        """Sample indices to explain: the surest correct image of a few different classes, then the surest
        mistake."""
        import numpy as np

        r = self.evaluation()
        p = r.predictions
        wanted = self.options.explain
        mistakes = [w["index"] for w in r.most_wrong[:1]] if wanted > 1 else []
        conf = p.probs.max(axis=1)
        correct = np.flatnonzero(p.preds == p.labels)
        picks: list[int] = []
        seen: set[int] = set()
        for i in correct[np.argsort(-conf[correct], kind="stable")]:
            if len(picks) >= wanted - len(mistakes):
                break
            if int(p.labels[i]) not in seen:
                seen.add(int(p.labels[i]))
                picks.append(int(i))
        return picks + mistakes

    def explanations(self) -> str:
        """Each picked image beside one overlay per method of `options.explain_methods`, described in the
        catalogue's words; a method this network cannot run says why under the image instead."""
        from PIL import Image

        from cvdemo.errors import CvdemoError
        from cvdemo.explain import BY_NAME, explain_image, model_view, overlay
        from cvdemo.plots import display_size
        from cvdemo.predict import Classifier

        r = self.evaluation()
        picks = self.explanation_picks()
        if not picks:
            return h.note("There are no images to explain.")
        clf = Classifier.from_run(self.run_dir, r.predictions.checkpoint)
        arch = self.config.get("model", {}).get("name")
        names = r.classes
        methods = [BY_NAME[m] for m in self.options.explain_methods]
        figures = []
        for index, image in zip(picks, r.images(picks)):
            a = image.numpy()
            pil = Image.fromarray(a[0], "L") if a.shape[0] == 1 else Image.fromarray(a.transpose(1, 2, 0), "RGB")
            view = display_size(model_view(clf, pil), low=192, high=256)
            overlays, failed, target, prob = [], [], None, 0.0
            for m in methods:
                try:
                    exp = explain_image(clf, pil, m.name, arch=arch)
                except CvdemoError as error:
                    failed.append(f"{h.e(m.display)}: {h.e(error)}")
                    continue
                target, prob = exp.target, exp.target_prob
                overlays.append(f'<figure class="map">{h.img(h.pil_png(overlay(view, exp.map, alpha=0.5)), f"{m.display} overlay")}'
                                f"<figcaption>{h.e(m.display)}</figcaption></figure>")
            true = names[int(r.predictions.labels[index])]
            said = f"predicted <b>{h.e(names[target])}</b> (p = {prob:.1%}, {'right' if names[target] == true else 'wrong'})" \
                if target is not None else "no method could explain it"
            figures.append(
                f'<figure class="pair"><div><figure class="map">{h.img(h.pil_png(view), "input image", "pixelated")}'
                f"<figcaption>input</figcaption></figure>{''.join(overlays)}</div>"
                f"<figcaption>#{index}: true <b>{h.e(true)}</b>, {said}"
                + "".join(f"<br>{f}" for f in failed) + "</figcaption></figure>")
        described = "; ".join(f"<b>{h.e(m.display)}</b> shows {h.e(m.description)}" for m in methods)
        return (f'<div class="gallery">{"".join(figures)}</div>'
                + h.note(f"For the predicted class: red regions are the strongest evidence for it. {described}."))

    def robustness(self) -> str:
        """Top-1 on the split under an untargeted FGSM attack at a handful of epsilons (cvdemo.explain.attack)."""
        from cvdemo.explain.attack import robustness_curve
        from cvdemo.explain.attack_plot import robustness_figure

        curve = robustness_curve(self.run_dir, method="fgsm", split=self.options.split,
                                 checkpoint=self.options.checkpoint, limit=self.options.robustness_limit)
        path = robustness_figure(curve, self.png("robustness"))
        rows = [[f"{e * 255:.0f}/255", h.pct(t)] for e, t in zip(curve["epsilons"], curve["top1"])]
        return (h.figure(path.read_bytes(), "top-1 against attack strength")
                + h.table(["epsilon (largest pixel change)", f"{h.e(curve['split'])} top-1"], rows)
                + h.note(f"Each of {curve['images']} {h.e(curve['split'])} images attacked with FGSM (one step of "
                         "the loss gradient's sign) away from its true class, no pixel changed by more than "
                         "epsilon. A network whose accuracy collapses at a few pixel steps out of 255 is fragile."))
