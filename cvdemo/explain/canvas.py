"""A drawing, read by a network: the image it sees, its best guesses and a heat map of why (the Draw page's one call).

    reading = read_canvas(classifier, canvas_rgba, "digits", method="saliency", arch="lenet")
    reading.picture        # PIL "L" 8x8: what the network sees (cvdemo.data.drawing)
    reading.guesses        # [{"class", "index", "prob"}, ...] surest first
    reading.explanation    # cvdemo.explain.Explanation over the network's input
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cvdemo.data.drawing import drawing_image
from cvdemo.explain.verb import Explanation, explain_image

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from cvdemo.predict import Classifier

DRAW_METHODS = ("saliency", "gradcam")  # one or two backward passes: cheap enough for every stroke


@dataclass
class CanvasReading:
    picture: Image.Image            # the drawing as its data set would hold it ("L", 8x8 or 28x28)
    guesses: list[dict[str, Any]]   # the k surest classes: {"class", "index", "prob"}
    explanation: Explanation        # the heat map of the top guess over the network's input
    seconds: float                  # preprocessing, prediction and heat map together


def read_canvas(classifier: Classifier, canvas: np.ndarray, style: str, *, method: str = "saliency",
                arch: str | None = None, k: int = 5) -> CanvasReading:
    """Preprocess a canvas array (grey, RGB or RGBA; see cvdemo.data.drawing.ink) the way the run's data was
    made, classify it and explain the top guess with `method`. DataError when the canvas is empty."""
    started = time.perf_counter()
    picture = drawing_image(canvas, style)
    guesses = classifier.top([picture], k=k)[0]
    exp = explain_image(classifier, picture, method, guesses[0]["index"], arch=arch)
    return CanvasReading(picture, guesses, exp, time.perf_counter() - started)
