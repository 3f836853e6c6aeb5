"""Issue 18, item 11 in a real browser: images of a clicked confusion-matrix cell are left out of the next
run through the same exclusion list the data check writes; the user's files stay where they are."""

import re

from shots import open_page, screenshot, settle

from cvdemo import runs
from cvdemo.config import RunConfig


def test_a_cells_images_can_be_left_out_of_the_next_run(server, page, tmp_path):
    from cvdemo.bench.data import write_folder
    from cvdemo.evaluate import evaluate_run
    from cvdemo.train.job import run_training

    folder = write_folder(tmp_path / "photos", "PNG", 16, 60, classes=3)
    cfg = RunConfig().replace(data={"source": str(folder)}, train={"epochs": 1}, name="my photos")
    run_dir = runs.create_run(server["runs"], cfg)
    run_training(cfg, run_dir)
    names = evaluate_run(run_dir).classes
    open_page(page, server["url"] + "/evaluate", "Evaluate")
    page.get_by_test_id("stAlertContentInfo").filter(has_text="Click a cell").wait_for(timeout=60_000)
    cell = page.locator(f'path[aria-label^="predicted class: {names[0]}; true class: {names[0]};"]').first
    cell.click(position={"x": 4, "y": 4}, timeout=30_000)
    picker = page.get_by_test_id("stMultiSelect").filter(has_text="Leave out of the next run")
    picker.wait_for(timeout=30_000)
    picker.click()
    page.get_by_role("option").first.click()
    page.keyboard.press("Escape")
    button = page.get_by_role("button", name=re.compile(r"^Train without these \d+$"))
    button.wait_for(timeout=30_000)
    n = int(button.inner_text().split()[-1])
    button.click()
    page.get_by_text(f"{n} file{'s' if n != 1 else ''} left out (data.exclude)").wait_for(timeout=30_000)
    settle(page)
    screenshot(page, "evaluate-leave-out")
    assert len(list(folder.rglob("*.png"))) == 60  # nothing deleted
