"""The Understand pages (Evaluate, Embeddings, Explain) under AppTest: a helpful message with no runs,
and with a trained digits run the figures the core computes, the images behind a clicked cell or a
drawn box, and an explanation of an uploaded image."""

import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cvdemo import runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `pages` is a package beside streamlit_app.py

from pages.ui import cached, state  # noqa: E402


def on_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    return at.switch_page(page).run()


def galleries(at: AppTest) -> list[list[str]]:
    """The captions of each st.image call on the page (one list per call)."""
    return [[img.caption for img in element.proto.imgs] for element in at.get("image")]


@pytest.fixture
def finished_run(digits_run):
    """The shared finished digits run, copied into this test's runs folder."""
    target = runs.default_root() / digits_run.name
    shutil.copytree(digits_run, target)
    return target


@pytest.mark.parametrize("page", ["pages/evaluate.py", "pages/embeddings.py"])
def test_analysis_pages_with_no_runs_say_how_to_get_one(page):
    at = on_page(page)
    assert not at.exception, at.exception
    assert "No trained run yet" in at.info[0].value and "Digits with LeNet" in at.info[0].value


def test_explain_with_no_runs_offers_the_imagenet_network_and_asks_for_a_photo():
    at = on_page("pages/explain.py")
    assert not at.exception, at.exception
    assert at.selectbox(key=state.KEY_EXPLAIN_WITH).value == cached.PRETRAINED
    assert at.segmented_control(key=state.KEY_EXPLAIN_INPUT).options == ["Upload a photo", "Take a photo"]  # no test split
    assert "Upload a photo" in at.info[0].value


def test_evaluate_shows_the_core_metrics_and_the_images_of_a_clicked_cell(finished_run):
    from cvdemo.evaluate import evaluate_run, samples_in_cell

    expected = evaluate_run(finished_run, "test")
    at = on_page("pages/evaluate.py")
    assert not at.exception, at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown == {"top-1 accuracy": f"{expected.top1:.1%}", "top-5 accuracy": f"{expected.top5:.1%}",
                     "macro-F1": f"{expected.macro_f1:.3f}", "calibration error (ECE)": f"{expected.ece:.3f}",
                     "loss": f"{expected.loss:.3f}"}
    assert len(at.get("vega_lite_chart")) == 3          # confusion matrix, per-class bars, reliability diagram
    wrong = galleries(at)
    assert len(wrong) == 1 and len(wrong[0]) == len(expected.most_wrong) > 0   # most confidently wrong
    assert "Click a cell" in at.info[0].value

    names = expected.classes
    off = expected.confusion - np.diag(np.diag(expected.confusion))
    t, p = np.unravel_index(off.argmax(), off.shape)     # the most common mix-up
    at.session_state[f"{state.KEY_EVAL_MATRIX}{finished_run.name}:test"] = {
        "selection": {state.SELECT_CELL: [{"t": int(t), "p": int(p)}]}}   # what a click on that cell sends
    at.run()
    assert not at.exception, at.exception
    idx = samples_in_cell(expected, int(t), int(p))
    assert len(idx) == expected.confusion[t, p] > 0
    assert any(s.value == f"{names[t]} → {names[p]}" for s in at.subheader)
    cell = galleries(at)[0]
    assert cell == [f"#{i} · {expected.predictions.probs[i, p]:.0%}" for i in idx[:30]]


def test_evaluate_validation_split(finished_run):
    from cvdemo.evaluate import evaluate_run

    at = on_page("pages/evaluate.py")
    at.selectbox(key=state.KEY_EVAL_SPLIT).set_value("val").run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["top-1 accuracy"] == f"{evaluate_run(finished_run, 'val').top1:.1%}"


def test_embeddings_pca_separation_box_gallery_and_3d_view(finished_run):
    from cvdemo.embed import embed_run

    expected = embed_run(finished_run, method="pca", dims=2, layer="penultimate", limit=500)
    at = on_page("pages/embeddings.py")
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["how well the classes separate"] == f"{expected.knn5:.1%}"
    assert len(at.get("vega_lite_chart")) == 1
    assert "lenet has no ImageNet weights" in at.info[-1].value      # nothing to compare a scratch run with

    x, y = expected.coords[:, 0], expected.coords[:, 1]
    box = {"x": [float(np.quantile(x, 0.2)), float(np.quantile(x, 0.6))],
           "y": [float(np.quantile(y, 0.2)), float(np.quantile(y, 0.6))]}
    inside = (x >= box["x"][0]) & (x <= box["x"][1]) & (y >= box["y"][0]) & (y <= box["y"][1])
    assert 0 < inside.sum() < len(x)
    at.session_state[f"{state.KEY_EMBED_SCATTER}{finished_run.name}:pca:penultimate:500"] = {
        "selection": {state.SELECT_BOX: box}}                         # what dragging that box sends
    at.run()
    assert not at.exception, at.exception
    assert any(s.value.startswith(f"{inside.sum()} selected image") for s in at.subheader)
    assert len(galleries(at)[0]) == min(int(inside.sum()), 24)

    at.segmented_control(key=state.KEY_EMBED_DIMS).set_value(3).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1
    three = embed_run(finished_run, method="pca", dims=3, layer="penultimate", limit=500)
    assert {m.label: m.value for m in at.metric}["how well the classes separate"] == f"{three.knn5:.1%}"


def digit_png(run_dir: Path, index: int = 0) -> tuple[bytes, int]:
    """A test image of the run as PNG bytes, and its class."""
    from cvdemo.evaluate import load_split

    images, _ = load_split(run_dir, "test")
    pixels, label = images[index]
    buf = io.BytesIO()
    Image.fromarray(pixels.numpy()[0]).save(buf, format="PNG")
    return buf.getvalue(), int(label)


EIGHT = ["saliency", "input_x_gradient", "deeplift", "guided_backprop", "deconvolution", "gradcam", "gradcam_pp",
         "eigencam"]


def choose_methods(at: AppTest, methods: list[str]) -> AppTest:
    """Pick `methods` in the Explain page's method form (one pills row per family) and press Explain."""
    from cvdemo.explain import BY_NAME, FAMILIES

    for family in FAMILIES:
        at.pills(key=f"{state.KEY_EXPLAIN_METHODS}:{family}").set_value(
            [m for m in methods if BY_NAME[m].family == family])
    return at.button[0].click().run()   # the form's only button: Explain


def explain_upload(finished_run) -> tuple[AppTest, bytes]:
    at = on_page("pages/explain.py")
    at.selectbox(key=state.KEY_EXPLAIN_WITH).set_value(str(finished_run)).run()
    data, _ = digit_png(finished_run)
    at.file_uploader(key=state.KEY_EXPLAIN_UPLOAD).set_value(("digit.png", data, "image/png")).run()
    return at, data


def test_explain_an_uploaded_image_with_a_run(finished_run):
    from cvdemo.data import decode_image
    from cvdemo.explain import explain_image, faithfulness, in_words, randomization_check
    from cvdemo.predict import Classifier

    at, data = explain_upload(finished_run)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]

    clf = Classifier.from_run(finished_run)
    image = decode_image(data, "digit.png")
    top = clf.top([image], k=5)[0]
    assert any(m.value == f"### {top[0]['class']} · {top[0]['prob']:.0%}" for m in at.markdown)
    # the picture, then saliency and Grad-CAM (the defaults, in catalogue order) named under their maps
    assert galleries(at)[1:3] == [["Saliency"], ["Grad-CAM"]]
    exp = explain_image(clf, image, "gradcam", arch="lenet")
    f = faithfulness(clf.model, clf.to_input(image), exp, **cached.FAITHFULNESS)
    assert in_words(f) in [c.value for c in at.caption]   # the scores in words under the map
    table = at.dataframe[0].value                           # and the numbers in the details
    row = table[table["method"] == "Grad-CAM"].iloc[0]
    assert row["deletion"] == pytest.approx(f.deletion_auc) and row["insertion"] == pytest.approx(f.insertion_auc)
    assert row["deletion, random maps"] == pytest.approx(f.deletion_random_auc)
    assert row["infidelity"] == pytest.approx(f.infidelity) and row["sensitivity"] == pytest.approx(f.sensitivity)
    assert list(table["method"]) == ["Saliency", "Grad-CAM"] and "ROAD" not in table.columns  # ROAD: CLI only
    # the picture, the two overlays, the sanity check's trained and random-weight maps, filters, feature maps
    assert len(galleries(at)) == 7
    check = randomization_check(clf.model, clf.to_input(image), "saliency", **explain_image(
        clf, image, "saliency", arch="lenet").options)
    assert any(m.value.startswith(f"Rank correlation (Spearman) **{check['spearman']:.2f}**") for m in at.markdown)
    # layers are named by their group first, the code name second
    picker = at.selectbox(key=state.KEY_EXPLAIN_MAPS_LAYER)
    assert picker.options == ["convolution 1  —  features.0", "convolution 2  —  features.3"]

    at.slider(key=state.KEY_EXPLAIN_ALPHA).set_value(0.9).run()   # re-blends the cached maps
    assert not at.exception and len(galleries(at)) == 7


def test_explain_shows_all_eight_chosen_methods_with_their_names(finished_run):
    from cvdemo.explain import BY_NAME

    at, _ = explain_upload(finished_run)
    at = choose_methods(at, EIGHT)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    names = [BY_NAME[m].display for m in EIGHT]
    assert galleries(at)[1:9] == [[n] for n in names]        # eight maps, each with its name under it
    assert list(at.dataframe[0].value["method"]) == names
    assert at.selectbox(key=state.KEY_EXPLAIN_SANITY).options == names
    assert len(at.get("progress")) == 0                      # the bar is gone once every map is drawn


def test_explain_a_picked_test_image_and_a_broken_upload(finished_run):
    at = on_page("pages/explain.py")
    at.selectbox(key=state.KEY_EXPLAIN_WITH).set_value(str(finished_run)).run()
    at.segmented_control(key=state.KEY_EXPLAIN_INPUT).set_value("test").run()
    at = choose_methods(at, ["cam"])
    assert not at.exception, at.exception
    _, label = digit_png(finished_run, 3)
    at.number_input(key=state.KEY_EXPLAIN_PICK).set_value(3).run()
    assert not at.exception, at.exception
    assert galleries(at)[0][0].startswith(f"test image #3, a {label}")
    # LeNet reads its features through extra layers after pooling: CAM says so in one sentence
    assert any("classic CAM needs" in e.value for e in at.error)

    at.segmented_control(key=state.KEY_EXPLAIN_INPUT).set_value("upload").run()
    at.file_uploader(key=state.KEY_EXPLAIN_UPLOAD).set_value(("cat.png", b"not a picture", "image/png")).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "cat.png" in at.error[0].value


def test_evaluate_sets_a_second_runs_confusion_matrix_beside_this_one(finished_run):
    from cvdemo.config import RunConfig
    from cvdemo.evaluate import evaluate_run
    from cvdemo.train.job import run_training

    cfg = RunConfig().replace(train={"epochs": 1, "lr": 0.0003}, name="one short epoch")
    short = runs.create_run(runs.default_root(), cfg)
    run_training(cfg, short)
    at = on_page("pages/evaluate.py")
    at.selectbox(key=state.KEY_EVAL_RUN).set_value(finished_run.name).run()
    assert not at.exception, at.exception
    assert at.selectbox(key=state.KEY_EVAL_OTHER).value == short.name
    assert len(at.get("vega_lite_chart")) == 5          # this run's three charts and the two matrices side by side
    a, b = evaluate_run(finished_run), evaluate_run(short)
    assert any("one short epoch · started" in m.value and f"top-1 {b.top1:.1%}" in m.value for m in at.markdown)
    differ = int((a.predictions.preds != b.predictions.preds).sum())
    assert any(f"disagree on {differ:,} of them" in c.value for c in at.caption)


def test_images_of_a_confusion_cell_can_be_left_out_of_the_next_run(tmp_path):
    from cvdemo.bench.data import write_folder
    from cvdemo.config import RunConfig
    from cvdemo.data import load_dataset
    from cvdemo.train.job import run_training

    folder = write_folder(tmp_path / "my photos", "PNG", 16, 60, classes=3)  # a space in the path, as users have
    cfg = RunConfig().replace(data={"source": str(folder)}, train={"epochs": 1})
    run_dir = runs.create_run(runs.default_root(), cfg)
    run_training(cfg, run_dir)
    at = on_page("pages/evaluate.py")
    at.session_state[f"{state.KEY_EVAL_MATRIX}{run_dir.name}:test"] = {
        "selection": {state.SELECT_CELL: [{"t": 0, "p": 0}]}}  # the first class read right, as a click sends it
    at.run()
    assert not at.exception, at.exception
    from cvdemo.evaluate import evaluate_run, samples_in_cell

    shown = [int(i) for i in samples_in_cell(evaluate_run(run_dir), 0, 0)[:30]]
    assert len(shown) >= 2, shown                       # the first class's images read right: at least two
    picker = at.multiselect(key=f"{state.KEY_EVAL_LEAVE_OUT}{run_dir.name}:test")
    picker.set_value(shown[:2]).run()
    at.button(key=state.KEY_EVAL_LEAVE_OUT_GO).click().run()
    assert not at.exception, at.exception
    assert any("2 files left out" in s.value for s in at.success)
    draft = RunConfig.from_dict(at.session_state[state.KEY_DRAFT])
    assert draft.data.source == str(folder) and len(draft.data.exclude) == 2
    before, after = load_dataset(str(folder)), load_dataset(str(folder), exclude=draft.data.exclude)
    assert sum(map(len, (after.train, after.val, after.test))) == sum(map(len, (before.train, before.val, before.test))) - 2
    assert sorted(p.name for p in folder.rglob("*.png")) and len(list(folder.rglob("*.png"))) == 60  # nothing deleted
