"""One number, one source: a run's test figures read the same on every surface (its summary, the Runs
table, the report's comparison table and run section, the Evaluate page's evaluation), also for a run
that did not learn, whose logits tie and whose softmax saturates (issue 18, item 10)."""

import json

import numpy as np
import pytest
import torch

from cvdemo import evaluate as ev
from cvdemo.train.trainer import topk_correct


@pytest.mark.parametrize("seed", range(5))
def test_training_and_evaluation_count_top_k_alike_when_scores_tie(seed):
    rng = np.random.default_rng(seed)
    logits = rng.integers(0, 3, size=(400, 6)).astype(np.float32)  # a few distinct values: ties everywhere
    logits[:50] = 80.0 * rng.integers(0, 2, size=(50, 6))           # saturating: softmax rounds these to 0 or 1
    labels = rng.integers(0, 6, size=400)
    hits = topk_correct(torch.from_numpy(logits), torch.from_numpy(labels), (1, 2, 5))
    ours = [int(h) / len(labels) for h in hits]
    sk = ev.topk_accuracy(logits, labels, ks=(1, 2, 5))
    assert ours == pytest.approx([sk[1], sk[2], sk[5]], abs=1e-9)


@pytest.mark.slow
def test_every_surface_shows_the_same_test_figures(tmp_path):
    from cvdemo import runs
    from cvdemo.compare import comparison_rows
    from cvdemo.config import RunConfig
    from cvdemo.report import build_report
    from cvdemo.train.job import run_training

    made = []
    for name, train in (("learned", {"epochs": 3}), ("did not learn", {"epochs": 2, "optimizer": "sgd", "lr": 5.0})):
        cfg = RunConfig().replace(train=train, name=name)
        run_dir = runs.create_run(tmp_path, cfg)
        run_training(cfg, run_dir)
        made.append(run_dir)
    rows = comparison_rows(made)
    html = build_report(made)
    for run_dir, row in zip(made, rows):
        summary = json.loads((run_dir / "summary.json").read_text())["test"]
        result = ev.evaluate_run(run_dir)
        figures = {"top1": result.top1, "top2": result.topk[2], "top5": result.top5, "macro_f1": result.macro_f1}
        for key, value in figures.items():
            assert summary[key] == pytest.approx(value, abs=1e-6), (run_dir.name, key)
            assert row[key] == pytest.approx(value, abs=1e-6), (run_dir.name, key)
        for key in ("top1", "top2", "top5"):
            assert f"{100 * figures[key]:.1f}%" in html, (run_dir.name, key)
