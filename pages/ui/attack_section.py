"""The Explain page's attack section: noise too faint to see that changes the network's answer (FGSM / PGD)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from pages.ui import bars, cached, state, widgets

if TYPE_CHECKING:
    from PIL import Image

    from cvdemo.explain.attack import AttackResult
    from cvdemo.predict import Classifier

UNTARGETED = "any"
METHODS = {"fgsm": "FGSM", "pgd": "PGD"}
SHOWN = 300  # pixels: each of the three pictures


@st.cache_data(max_entries=16, show_spinner=False)
def attacked(_classifier: Classifier, key: tuple, _image: Image.Image, method: str, epsilon_255: float,
             target: int | None) -> AttackResult:
    """cvdemo.explain.attack.attack_image of one image (`key`: network, checkpoint time, image digest)."""
    from cvdemo.explain.attack import attack_image

    with cached.model_lock():  # the network is shared by every session
        return attack_image(_classifier, _image, method, epsilon_255 / 255, target)


def _big(picture: np.ndarray) -> np.ndarray:
    """Small inputs (a 32x32 digit) enlarged with square pixels, so the noise is seen pixel by pixel."""
    k = max(1, SHOWN // max(picture.shape[:2]))
    return picture.repeat(k, axis=0).repeat(k, axis=1) if k > 1 else picture


def _guesses(title: str, top: list[dict[str, Any]]) -> None:
    st.markdown(f"**{title}: {widgets.plain(top[0]['class'])}** · {top[0]['prob']:.0%}")
    st.altair_chart(bars.top_bars(top, height_per_bar=34, label_size=14), width="stretch")


def show(classifier: Classifier, image: Image.Image, key: tuple) -> None:
    """Widgets, the "Attack" button and, once pressed, original | magnified noise | attacked with predictions."""
    from cvdemo.explain.attack import ATTACK_NOTES, magnified

    st.subheader("Fool the network: adversarial noise")
    st.caption("A tiny change to every pixel, chosen with the network's own gradients, can change its answer "
               "while the photo looks the same to us. ε is the largest change any pixel may get, in steps of an "
               "8-bit pixel (0-255): at 4 the difference is invisible, yet PGD usually flips the answer — or, with "
               "a target, makes the network say whatever class you pick.")
    classes = classifier.classes
    method_col, eps_col, target_col, go_col = st.columns([2, 4, 4, 2], gap="medium", vertical_alignment="bottom")
    method = method_col.segmented_control("Method", list(METHODS), format_func=METHODS.get, default="pgd",
                                          required=True, key=state.KEY_ATTACK_METHOD,
                                          help=" · ".join(f"{m.upper()}: {n}" for m, n in ATTACK_NOTES.items()))
    epsilon = eps_col.slider("Noise strength ε (pixel steps out of 255)", 1, 64, 4, key=state.KEY_ATTACK_EPSILON)
    choice = target_col.selectbox("Make it say", [UNTARGETED, *range(len(classes))], key=state.KEY_ATTACK_TARGET,
                                  format_func=lambda c: "anything but its answer" if c == UNTARGETED else classes[c],
                                  help="a target class (type to search), or any class but the current answer")
    target = None if choice == UNTARGETED else int(choice)
    asked = (key, method, float(epsilon), target)
    if go_col.button("Attack", type="primary", icon=":material/bolt:", key=state.KEY_ATTACK_RUN):
        st.session_state[state.KEY_ATTACK_LAST] = asked
    if st.session_state.get(state.KEY_ATTACK_LAST) != asked:
        st.caption("Press **Attack** to compute the noise (PGD on a laptop CPU: a few seconds for a 224-pixel photo).")
        return
    try:
        with st.spinner(f"{method.upper()} at ε = {epsilon}/255…"):
            result = attacked(classifier, key, image, method, float(epsilon), target)
    except Exception as e:  # noqa: BLE001 - one sentence, never a traceback
        widgets.show_failure(e, "the attack")
        return
    aim = f"to say **{widgets.plain(classes[target])}**" if target is not None else "to change its answer"
    verdict = "worked" if result.success else "did not work: try a larger ε or PGD"
    st.markdown(f"{result.method.upper()} tried {aim} with no pixel changed by more than {epsilon}/255: it "
                f"**{verdict}** ({result.seconds:.1f} s; largest change {result.max_change * 255:.2f}/255).")
    original_col, noise_col, adversarial_col = st.columns(3, gap="medium")
    with original_col:
        st.image(_big(result.original), width=SHOWN, caption="what the network sees")
        _guesses("Before", result.before)
    with noise_col:
        st.image(_big(magnified(result.perturbation, result.epsilon)), width=SHOWN,
                 caption=f"the noise, magnified {0.5 / result.epsilon:.0f}× (grey = no change)")
    with adversarial_col:
        st.image(_big(result.adversarial), width=SHOWN, caption="photo + noise")
        _guesses("After", result.after)
