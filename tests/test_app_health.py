"""Issue 18, item 2 under AppTest: a run that did not learn is called out on the Train page (beside its
finished state, which is then not green) and in the Runs table; a diverged run still draws its curve."""

import json
import sys
from pathlib import Path

from helpers import recorded_run
from streamlit.testing.v1 import AppTest

from cvdemo import runs
from cvdemo.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `pages` is a package beside streamlit_app.py


def on_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=90).run()
    return at.switch_page(page).run()


def lr5_run() -> Path:
    """SGD at lr 5 as the issue met it: finished, test top-1 31.9%, losses in the hundreds."""
    run_dir = recorded_run(runs.default_root(), epochs_planned=3, losses=[300, 350, 380], state="completed")
    runs.write_json(run_dir / "summary.json", {"data": {"classes": [str(i) for i in range(10)]},
                                               "test": {"top1": 0.319}})
    runs.write_status(run_dir, "completed", "test top-1 31.9%")
    return run_dir


def test_train_page_calls_out_an_unstable_run_beside_its_finished_state():
    lr5_run()
    at = on_page("pages/train.py")
    assert not at.exception, at.exception
    assert not [s.value for s in at.success if "Finished" in s.value]     # no green "Finished" for it
    assert any("Finished: test top-1 31.9%" in i.value for i in at.info)
    (verdict,) = [e.value for e in at.error if "Unstable" in e.value]
    assert "try 0.05 or run the LR finder" in verdict


def test_train_page_shows_a_healthy_run_in_green(digits_run):
    import shutil

    shutil.copytree(digits_run, runs.default_root() / digits_run.name)
    at = on_page("pages/train.py")
    assert not at.exception, at.exception
    assert any(s.value.startswith("**Healthy.**") for s in at.success)
    assert any(s.value.startswith("Finished:") for s in at.success)


def test_a_diverged_run_draws_its_loss_up_to_the_point_it_blew_up():
    run_dir = runs.create_run(runs.default_root(), RunConfig().replace(train={"optimizer": "sgd", "lr": 1000.0}))
    runs.append_metrics(run_dir, {"kind": "step", "step": 2, "epoch": 0.03, "loss": 40.0, "lr": 1000.0})
    runs.append_metrics(run_dir, {"kind": "step", "step": 5, "epoch": 0.07, "loss": 16676.0, "lr": 997.0,
                                  "diverged": True})
    runs.write_status(run_dir, "diverged", "the loss became 1.67e+04 at epoch 1, step 5 (learning rate 997)")
    at = on_page("pages/train.py")
    assert not at.exception, at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert len(charts) == 2  # loss and learning rate, step by step; accuracy waits for an epoch
    assert any("none has finished" in c.value for c in at.caption)
    assert any("The training diverged" in e.value for e in at.error)


def test_runs_table_has_a_health_column():
    unstable = lr5_run()
    at = on_page("pages/compare.py")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert "health" in table.columns
    assert table.set_index("run").loc[unstable.name, "health"] == "unstable"
