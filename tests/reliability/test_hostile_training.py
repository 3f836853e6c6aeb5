"""Settings that are valid one by one but hostile together with the data or the hardware: a batch larger than
the data set, an image size the architecture shrinks to nothing, and the GPU running out of memory."""

from __future__ import annotations

import pytest
import torch
from hostile import TINY, assert_sentence

from cvdemo import runs
from cvdemo.checkpoint import load_checkpoint
from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError, CvdemoError
from cvdemo.train.job import run_training


def test_batch_size_larger_than_the_data_set_trains_one_full_batch_per_epoch(runs_root):
    config = RunConfig().replace(data={"limit_train": 30, "limit_test": 50}, train={"epochs": 2, "batch_size": 4096})
    run_dir = runs.create_run(runs_root, config)
    summary = run_training(config, run_dir)
    assert summary["status"] == "completed", summary
    assert summary["data"]["train"] == 30
    steps = [m["step"] for m in runs.read_metrics(run_dir) if m["kind"] == "step"]
    assert steps == [1, 2]  # one optimisation step per epoch, over all 30 images
    assert load_checkpoint(run_dir / "last.pt")["step"] == 2


@pytest.mark.parametrize("model, size", [("alexnet", 16), ("vgg11", 8), ("lenet", 8)])
def test_image_size_too_small_for_the_architecture_is_a_sentence_before_any_work(runs_root, model, size):
    config = RunConfig().replace(model={"name": model}, data={"image_size": size, **TINY["data"]},
                                 train=TINY["train"])
    run_dir = runs.create_run(runs_root, config)
    with pytest.raises(ConfigError) as err:
        run_training(config, run_dir)
    assert_sentence(err.value, f"{model} cannot take {size}x{size} images", "use a larger --image-size")
    assert runs.read_status(run_dir)["state"] == "failed"
    assert not (run_dir / "last.pt").exists()


class OutOfMemoryOnce:
    """Trainer callback: from the first batch on, the model's forward raises CUDA's out-of-memory error."""

    def on_batch_end(self, trainer, info):
        def forward(*args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.52 GiB (GPU 0; 7.79 GiB total "
                                         "capacity; 6.10 GiB already allocated)")
        trainer.model.forward = forward


def test_simulated_cuda_out_of_memory_suggests_a_smaller_batch(runs_root):
    config = RunConfig().replace(**TINY)
    run_dir = runs.create_run(runs_root, config)
    with pytest.raises(CvdemoError) as err:
        run_training(config, run_dir, callbacks=[OutOfMemoryOnce()])
    text = assert_sentence(err.value, "ran out of memory", "at batch size 32", "try --batch-size 16")
    assert "Traceback" not in text and "CUDA out of memory. Tried" not in text
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and "--batch-size 16" in status["message"]
    assert runs.read_json(run_dir / "summary.json")["status"] == "failed"
