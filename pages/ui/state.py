"""Every st.session_state key the app uses, defined once, and the draft run config the pages share.

Widget keys are session-state keys too: a test finds a widget by the same constant the page gives it.
Keys ending in ":" are prefixes; the comment says what follows.
"""

from __future__ import annotations

import copy
from typing import Any

import streamlit as st

from cvdemo.config import RunConfig

# -- app-wide ------------------------------------------------------------------------------------
KEY_DRAFT = "draft_config"             # dict: the RunConfig that Home, Data and Model fill in and Train starts from
KEY_DATA_INFO = "data_info"            # {"kind", "source", "label", "classes", "channels"} of the last data that loaded
KEY_FLASH = "flash_message"            # one message to show after a st.rerun()
KEY_WATCH_RUN = "watch_run"            # the run whose curves the Train page shows (Home's lessons set it)

# -- Home ----------------------------------------------------------------------------------------
KEY_LESSON_START = "lesson_start:"     # + lesson title: one-click "Start" buttons
KEY_LESSON_EDIT = "lesson_edit:"       # + lesson title: "change settings first" buttons
KEY_RECIPE = "recipe"                  # the report recipe picked
KEY_RECIPE_OPEN = "recipe_open"
KEY_COMPARE_START = "compare_lesson_start:"  # + lesson name: "Start all arms" on a comparison lesson's card
KEY_COMPARE_ARM = "compare_lesson_arm:"      # + lesson name + ":" + arm index: "change this arm first"
KEY_ACTIVE_LESSON = "active_lesson"    # {"lesson": name, "arms": [[label, run folder], ...]} started from Home
KEY_LESSON_LOG = "lesson_log"          # the lesson view's loss on a log scale

# -- Data ----------------------------------------------------------------------------------------
KEY_DATA_KIND = "data_kind"            # where the images come from
KEY_DATA_TORCHVISION = "data_torchvision"
KEY_DATA_LOAD = "data_load"
KEY_DATA_ZIP = "data_zip"
KEY_DATA_IMAGES = "data_images"
KEY_DATA_CLASS = "data_class:"         # + index: class name typed for an uploaded image
KEY_DATA_MAKE = "data_make"
KEY_DATA_FOLDER = "data_folder"
KEY_AUDIT_RUN = "audit_run"            # "Check this data"
KEY_AUDIT_FOR = "audit_for"            # the arguments of the data check whose results the page shows
KEY_AUDIT_REPORT = "audit_report"      # its cvdemo.audit.AuditReport (holds the loaded images it draws)
KEY_AUDIT_ORDER = "audit_order"        # lowest scores first in the check's galleries
KEY_AUDIT_CSV = "audit_csv"            # the findings' CSV download
KEY_AUDIT_EXCLUDE_KINDS = "audit_exclude_kinds"  # kinds of findings whose files may be left out of training
KEY_AUDIT_EXCLUDE = "audit_exclude"    # leave them out: writes the draft's data.exclude

# -- Model ---------------------------------------------------------------------------------------
KEY_MODEL_NAME = "model_name"
KEY_MODEL_PRETRAINED = "model_pretrained"
KEY_MODEL_FREEZE = "model_freeze"
KEY_MODEL_SIZE = "model_use_size"          # the "Use image size N" button

# -- Train ---------------------------------------------------------------------------------------
KEY_FORM = "form:"                     # + "train.lr": the Train form's widgets (see form_key)
KEY_TRAIN_FORM = "train_form"
KEY_TRAIN_START = "train_start"
KEY_TRAIN_CANCEL = "train_cancel"
KEY_TRAIN_SHARE = "train_share"        # "Update the link" (keeps the form in the URL, trains nothing)
KEY_URL_SETTINGS = "url_settings"      # the query parameters the Train page last read from or wrote to the URL
KEY_CONFIG_DOWNLOAD = "config_download"
KEY_CONFIG_UPLOAD = "config_upload"
KEY_CONFIG_UPLOADED = "config_uploaded"  # file id of the settings file already applied
KEY_LR_FIND_START = "lr_find_start"    # the form's "Find a learning rate" button
KEY_LR_FIND = "lr_find"                # background.BackgroundTask of the LR finder (about = the form's settings)
KEY_LR_USE = "lr_use"                  # "Use this rate": puts the suggestion in the form's lr field
KEY_TRAIN_DYNAMICS = "train_dynamics"  # which per-group value the lines under the heat map show
KEY_TRAIN_GRADIENTS = "train_gradients"  # show the watched run's per-layer-group gradient heat map

# -- Runs ----------------------------------------------------------------------------------------
KEY_SELECTED_RUN = "selected_run"      # run id picked for download / delete
KEY_COMPARE = "compare_runs"
KEY_COMPARE_CSV = "compare_csv"
KEY_COMPARE_LOG = "compare_log"         # the overlaid loss on a log scale (default on)
KEY_SCATTER_X = "scatter_x"
KEY_RESUME = "resume_run"             # the Runs page's "Resume from epoch N"
KEY_EXPORT = "export_run"             # its "Export for use elsewhere"
KEY_EXPORTED = "exported"             # (run id, zip bytes, model card) of the last export
KEY_EXPORT_DOWNLOAD = "export_download"
KEY_DELETE_CONFIRM = "delete_confirm"
KEY_DELETE = "delete_run"
KEY_DOWNLOAD = "download_best"
KEY_REPORT_BUILD = "report_build"
KEY_REPORT = "report_html"             # {"runs": the run ids and checkpoint times it covers, "html": bytes}
KEY_REPORT_DOWNLOAD = "report_download"

# -- Classify ------------------------------------------------------------------------------------
KEY_CLASSIFY_WITH = "classify_with"
KEY_CLASSIFY_FILES = "classify_files"
KEY_CLASSIFY_TOPK = "classify_topk"
KEY_CLASSIFY_CSV = "classify_csv"

# -- Evaluate, Embeddings, Explain ---------------------------------------------------------------
KEY_EVAL_RUN = "eval_run"
KEY_EVAL_SPLIT = "eval_split"
KEY_EVAL_LEAVE_OUT = "eval_leave_out:"  # + run id + ":" + split: images of a cell picked to leave out
KEY_EVAL_LEAVE_OUT_GO = "eval_leave_out_go"
KEY_EVAL_OTHER = "eval_other"          # the run whose confusion matrix is set beside this one's
KEY_EVAL_PAIR = "eval_pair:"           # + run id: the two side-by-side matrices
KEY_EVAL_MATRIX = "eval_matrix:"       # + run id + ":" + split: the confusion-matrix chart (its state = clicked cell)
KEY_EMBED_RUN = "embed_run"
KEY_EMBED_METHOD = "embed_method"
KEY_EMBED_DIMS = "embed_dims"
KEY_EMBED_LAYER = "embed_layer"
KEY_EMBED_LIMIT = "embed_limit"
KEY_EMBED_SCATTER = "embed_scatter:"   # + the picture's settings: the 2-D scatter (its state = the box drawn)
KEY_EXPLAIN_WITH = "explain_with"
KEY_EXPLAIN_INPUT = "explain_input"
KEY_EXPLAIN_UPLOAD = "explain_upload"
KEY_EXPLAIN_CAMERA = "explain_camera"
KEY_EXPLAIN_PICK = "explain_pick"
KEY_EXPLAIN_TARGET = "explain_target"
KEY_EXPLAIN_METHODS = "explain_methods"
KEY_EXPLAIN_SANITY = "explain_sanity"
KEY_EXPLAIN_ALPHA = "explain_alpha"
KEY_EXPLAIN_MAPS_LAYER = "explain_maps_layer"

# -- Draw, and Explain's attack section -----------------------------------------------------------
KEY_DRAW_RUN = "draw_run"
KEY_DRAW_PEN = "draw_pen"              # pen width in canvas pixels
KEY_DRAW_METHOD = "draw_method"        # the heat map over the network's input
KEY_DRAW_CANVAS = "draw_canvas:"       # + a number that "Clear" raises: a new key is an empty canvas
KEY_DRAW_CLEARS = "draw_clears"        # how often "Clear" was pressed (the canvas key's number)
KEY_DRAW_CLEAR = "draw_clear"
KEY_DRAW_TRAIN = "draw_train"          # "train the digits lesson" when no digits run exists
KEY_ATTACK_METHOD = "attack_method"
KEY_ATTACK_EPSILON = "attack_epsilon"  # in 0-255 pixel units
KEY_ATTACK_TARGET = "attack_target"
KEY_ATTACK_RUN = "attack_run"          # the "Attack" button
KEY_ATTACK_LAST = "attack_last"        # (image key, method, epsilon in 0-255, target) of the last attack asked for

# Names of the chart selections the pages read back from a chart's state (see charts.selected).
SELECT_CELL = "cell"
SELECT_BOX = "box"


def form_key(section: str, name: str) -> str:
    """The Train form widget's key for a config field: form_key("train", "lr") -> "form:train.lr"."""
    return f"{KEY_FORM}{section}.{name}" if section else f"{KEY_FORM}{name}"


# -- the draft config shared by Home, Data, Model and Train --------------------------------------

def draft() -> dict[str, Any]:
    """A copy of the run config the Train form starts from (a plain dict, as RunConfig.to_dict gives)."""
    if KEY_DRAFT not in st.session_state:
        st.session_state[KEY_DRAFT] = RunConfig().to_dict()
    return copy.deepcopy(st.session_state[KEY_DRAFT])


def update_draft(**sections: dict[str, Any]) -> None:
    """Change some fields of the draft: `update_draft(data={"source": "mnist"})`."""
    raw = draft()
    for section, values in sections.items():
        raw[section].update(values)
    st.session_state[KEY_DRAFT] = raw


def set_draft(config: RunConfig) -> None:
    """Make `config` the draft and let the Train form's widgets show it (their kept values are dropped)."""
    st.session_state[KEY_DRAFT] = config.to_dict()
    for key in [k for k in st.session_state.keys() if isinstance(k, str) and k.startswith(KEY_FORM)]:
        del st.session_state[key]
