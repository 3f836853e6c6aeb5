"""A drawing on a canvas becomes the image the network's data was made of (cvdemo.data.drawing)."""

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cvdemo.data.drawing import drawing_image, drawing_input, drawing_style, ink, run_drawing_style
from cvdemo.errors import DataError

CANVAS = 280
PEN = 24  # pixels: a felt pen on a 280-pixel canvas, about what the Draw page's default is


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 360.0, n: int = 40):
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(start, end, n)]


# Each digit as strokes in a unit box (x right, y down), the way a person draws it with a mouse.
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_ellipse(0.5, 0.5, 0.38, 0.5)],
    1: [[(0.3, 0.2), (0.55, 0.0), (0.55, 1.0)]],
    2: [[(0.1, 0.25), (0.3, 0.02), (0.7, 0.02), (0.9, 0.25), (0.8, 0.5), (0.1, 1.0), (0.95, 1.0)]],
    3: [[(0.1, 0.1), (0.5, 0.0), (0.85, 0.15), (0.85, 0.35), (0.45, 0.5), (0.9, 0.65), (0.9, 0.85), (0.5, 1.0),
         (0.1, 0.9)]],
    4: [[(0.7, 1.0), (0.7, 0.0), (0.05, 0.65), (0.95, 0.65)]],
    5: [[(0.9, 0.0), (0.2, 0.0), (0.15, 0.45), (0.6, 0.4), (0.9, 0.6), (0.85, 0.9), (0.5, 1.0), (0.1, 0.9)]],
    6: [[(0.8, 0.0), (0.4, 0.1), (0.15, 0.5), (0.15, 0.85), (0.45, 1.0), (0.85, 0.85), (0.85, 0.6), (0.5, 0.5),
         (0.15, 0.65)]],
    7: [[(0.05, 0.0), (0.95, 0.0), (0.4, 1.0)]],
    8: [_ellipse(0.5, 0.25, 0.3, 0.25), _ellipse(0.5, 0.75, 0.38, 0.25)],
    9: [_ellipse(0.5, 0.3, 0.35, 0.3), [(0.85, 0.3), (0.8, 1.0)]],
}


def canvas_of(strokes, *, box=(90, 40, 190, 240), pen: int = PEN, background=(0, 0, 0, 255),
              colour=(255, 255, 255, 255)) -> np.ndarray:
    """An RGBA (280, 280, 4) uint8 array as streamlit-drawable-canvas returns it: strokes drawn in `box`."""
    img = Image.new("RGBA", (CANVAS, CANVAS), background)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = box
    for path in strokes:
        points = [(left + x * (right - left), top + y * (bottom - top)) for x, y in path]
        draw.line(points, fill=colour, width=pen, joint="curve")
        for x, y in (points[0], points[-1]):  # round pen ends, as on a canvas
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=colour)
    return np.asarray(img)


def test_a_drawing_becomes_an_8x8_digit_with_17_grey_levels():
    image = drawing_image(canvas_of(STROKES[1]), "digits")
    a = np.asarray(image)
    assert image.mode == "L" and a.shape == (8, 8)
    levels = np.rint(np.arange(17) * 255 / 16)
    assert set(np.unique(a)) <= set(levels)
    assert a[0].max() > 0 and a[-1].max() > 0          # a tall digit fills the height, like the data set
    assert a[:, 0].max() == 0 and a[:, -1].max() == 0  # and keeps its narrow width, centred
    assert a[:, 3:5].sum() > a.sum() * 0.6


def test_position_size_and_colours_do_not_change_the_8x8_image():
    reference = np.asarray(drawing_image(canvas_of(STROKES[7]), "digits"))
    moved = canvas_of(STROKES[7], box=(20, 10, 120, 210))
    inverted = canvas_of(STROKES[7], background=(255, 255, 255, 255), colour=(0, 0, 0, 255))
    transparent = canvas_of(STROKES[7], background=(0, 0, 0, 0))
    for canvas in (inverted, transparent, canvas_of(STROKES[7])[:, :, :3], ink(canvas_of(STROKES[7]))):
        assert np.array_equal(np.asarray(drawing_image(canvas, "digits")), reference)
    bigger = canvas_of(STROKES[7], box=(60, 0, 200, 280), pen=34)
    for canvas in (moved, bigger):  # the same strokes elsewhere: only antialiased edges differ
        other = np.asarray(drawing_image(canvas, "digits")).astype(int)
        assert np.abs(other - reference).mean() < 255 / 16 * 2 and ((other > 0) == (reference > 0)).mean() > 0.9


def test_mnist_convention_fits_20x20_and_centres_the_mass():
    image = drawing_image(canvas_of(STROKES[4], box=(0, 0, 100, 200)), "mnist")
    a = np.asarray(image).astype(float)
    assert a.shape == (28, 28)
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 <= 20
    ys, xs = np.indices(a.shape)
    assert abs((ys * a).sum() / a.sum() - 13.5) <= 0.5 and abs((xs * a).sum() / a.sum() - 13.5) <= 0.5


def test_an_empty_canvas_says_so_in_one_sentence():
    for empty in (np.zeros((CANVAS, CANVAS, 4), np.uint8), np.full((CANVAS, CANVAS, 4), 255, np.uint8)):
        for style in ("digits", "mnist"):
            with pytest.raises(DataError, match="canvas is empty"):
                drawing_image(empty, style)
    with pytest.raises(DataError, match="drawing style"):
        drawing_image(canvas_of(STROKES[1]), "cifar")
    with pytest.raises(DataError, match="shape"):
        drawing_image(np.zeros((4, 4, 2), np.uint8))


def test_style_follows_the_data_source():
    assert drawing_style("digits") == "digits"
    assert drawing_style("mnist") == drawing_style("fashion-mnist") == "mnist"


@pytest.mark.slow
def test_a_digits_lenet_reads_drawn_digits(digits_run):
    """Digits 0-9 drawn with a pen into a 280x280 canvas, preprocessed, classified by a LeNet trained on the 8x8
    digits for the test: at least 8 of 10 right."""
    import torch

    from cvdemo.predict import Classifier

    clf = Classifier.from_run(digits_run)
    for pen in (8, PEN):  # a thin pen too: its strokes are widened to the data set's
        batch = torch.cat([drawing_input(canvas_of(STROKES[d], pen=pen), "digits", size=clf.image_size,
                                         mean=clf.mean, std=clf.std, channels=clf.in_channels) for d in range(10)])
        assert torch.equal(batch[7:8], clf.to_input(drawing_image(canvas_of(STROKES[7], pen=pen), "digits")))
        with torch.no_grad():
            predicted = clf.model(batch).argmax(1).tolist()
        right = [d for d in range(10) if predicted[d] == d]
        assert len(right) >= 8, (pen, dict(enumerate(predicted)))


@pytest.mark.slow
def test_the_draw_pages_own_lesson_reads_drawn_digits(tmp_path):
    """The run the Draw page's button trains (the classroom recipe: a modern LeNet reading the digits at 16 px)
    takes drawings through the page's own read_canvas: at least 8 of 10 right."""
    from cvdemo import runs
    from cvdemo.data.drawing import run_drawing_style
    from cvdemo.explain.canvas import read_canvas
    from cvdemo.predict import Classifier
    from cvdemo.recipes import load_recipe
    from cvdemo.train.job import run_training

    config = load_recipe("lenet-digits").config
    run_dir = runs.create_run(tmp_path, config)
    assert run_training(config, run_dir)["status"] == "completed"
    style = run_drawing_style(run_dir)
    clf = Classifier.from_run(run_dir)
    assert style == "digits" and clf.image_size == 16
    read = [read_canvas(clf, canvas_of(STROKES[d], pen=PEN), style, arch=config.model.name) for d in range(10)]
    right = [d for d in range(10) if read[d].guesses[0]["class"] == str(d)]
    assert len(right) >= 8, {d: r.guesses[0]["class"] for d, r in enumerate(read)}


def test_only_grey_runs_with_few_classes_take_drawings(tmp_path):
    import json

    def run(source, summary=None):
        folder = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"data": {"source": source}}))
        if summary is not None:
            (folder / "summary.json").write_text(json.dumps({"data": summary}))
        return folder

    assert run_drawing_style(run("digits", {"channels": 1, "classes": list("0123456789")})) == "digits"
    assert run_drawing_style(run("mnist")) == "mnist"                      # still training: by its source
    assert run_drawing_style(run("/data/letters", {"channels": 1, "classes": list("abcdef")})) == "mnist"
    assert run_drawing_style(run("cifar10")) is None
    assert run_drawing_style(run("/data/pets", {"channels": 3, "classes": ["cat", "dog"]})) is None
    assert run_drawing_style(run("/data/many", {"channels": 1, "classes": [str(i) for i in range(50)]})) is None
