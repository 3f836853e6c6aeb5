"""Boundaries: run ids and upload names cannot reach outside the runs folder, limits on pixels and upload
sizes have sane defaults and can be changed, the app listens on this machine only with XSRF protection on,
and no user file is ever unpickled."""

from __future__ import annotations

import ast
import tomllib

import pytest
from helpers import ROOT, cvdemo
from hostile import assert_cli_error, assert_sentence, class_image, encode, snapshot
from PIL import Image

from cvdemo import limits, runs, uploads
from cvdemo.config import RunConfig
from cvdemo.data import decode_image
from cvdemo.errors import ConfigError, CvdemoError, DataError


@pytest.mark.parametrize("run_id", ["../outside", "..", ".", "../../etc", "/etc", "a/../../b", "..\\outside",
                                    ".hidden", "C:\\runs", "x\x00y", "new\nline", "x" * 300])
def test_run_ids_cannot_reach_outside_the_runs_folder(runs_root, run_id):
    outside = runs_root.parent / "outside"  # a real run beside the runs folder, to be reached by '..'
    outside.mkdir(exist_ok=True)
    runs.write_json(outside / "config.json", RunConfig().to_dict())
    with pytest.raises(CvdemoError) as err:
        runs.run_path(run_id, runs_root)
    assert_sentence(err.value, "is not a run id", "give the id or the run's folder")
    if "\x00" not in run_id and "\n" not in run_id:
        with pytest.raises(CvdemoError) as err:
            runs.resolve_run(run_id if run_id != "../outside" else "../outside", runs_root)
        assert_sentence(err.value, "run")


def test_a_plain_run_id_resolves_under_the_runs_folder(existing_run, runs_root):
    assert runs.run_path(existing_run.name, runs_root) == existing_run
    assert runs.resolve_run(existing_run.name, runs_root) == existing_run


def test_cli_refuses_a_run_id_with_dots(runs_root, tmp_path):
    (tmp_path / "x.png").write_bytes(class_image(0, 0))
    proc = cvdemo("predict", "../../etc", str(tmp_path / "x.png"), timeout=60)
    assert_cli_error(proc, "predict", "no run at '../../etc'", "give a run folder or a run id")


@pytest.mark.parametrize("field, value", [
    ("source", "../../../../etc/passwd"), ("source", "/etc/shadow"), ("source", "..\\..\\x.zip"),
    ("name", "../../escape"),
])
def test_new_run_folders_stay_directly_under_the_runs_folder(runs_root, field, value):
    config = RunConfig().replace(data={"source": value}) if field == "source" else RunConfig().replace(name=value)
    run_dir = runs.create_run(runs_root, config)
    assert run_dir.parent == runs_root and ".." not in run_dir.name and "/" not in run_dir.name


def test_uploaded_names_cannot_place_files_outside_the_uploads_folder(runs_root):
    png = class_image(0, 0)
    folder = uploads.save_labelled_images([("../../../evil", "../../../../tmp/x.png", png),
                                           ("/etc/cron.d", "..\\..\\y.png", png),
                                           ("ok", "z.png", png)])
    stored = runs_root / uploads.UPLOADS
    assert folder.parent == stored
    written = [p for p in folder.rglob("*") if p.is_file()]
    assert len(written) == 3 and all(p.resolve().is_relative_to(folder.resolve()) for p in written)
    assert sorted(p.parent.name for p in written) == ["etccrond", "evil", "ok"]
    zipped = uploads.save_zip(b"PK\x05\x06" + bytes(18))
    assert zipped.parent == stored and zipped.name.startswith("upload-")  # named by content, never by the user
    with pytest.raises(CvdemoError, match="no letters or digits"):
        uploads.save_labelled_images([("../..", "a.png", png), ("b", "b.png", png)])


# -- limits ---------------------------------------------------------------------------------------

def test_limits_have_sane_defaults(monkeypatch):
    for name in ("CVDEMO_MAX_PIXELS", "CVDEMO_MAX_ZIP_MB", "CVDEMO_MAX_IMAGE_MB"):
        monkeypatch.delenv(name, raising=False)
    assert 10_000_000 <= limits.max_pixels() <= 100_000_000  # a 40-megapixel photo, not a 50k x 50k bomb
    assert 20 <= limits.max_zip_mb() <= 1000
    assert 5 <= limits.max_image_mb() <= limits.max_zip_mb()
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert limits.max_zip_mb() <= server["maxUploadSize"] <= 1000  # the server accepts what the page allows


def test_pixel_limit_is_configurable(monkeypatch):
    photo = encode(Image.new("RGB", (40, 30)), "PNG")
    assert decode_image(photo, "photo.png").size == (40, 30)
    monkeypatch.setenv("CVDEMO_MAX_PIXELS", "1000")
    with pytest.raises(DataError) as err:
        decode_image(photo, "photo.png")
    assert_sentence(err.value, "photo.png is 40x30 pixels, more than the 1,000 allowed", "shrink it or remove it")
    monkeypatch.setenv("CVDEMO_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError) as err:
        decode_image(photo, "photo.png")
    assert_sentence(err.value, "CVDEMO_MAX_PIXELS must be a whole number of at least 1, got 'lots'", "unset it")


def test_upload_limits_are_configurable(monkeypatch):
    monkeypatch.setenv("CVDEMO_MAX_ZIP_MB", "5")
    monkeypatch.setenv("CVDEMO_MAX_IMAGE_MB", "1")
    assert (limits.max_zip_mb(), limits.max_image_mb()) == (5, 1)


def test_streamlit_listens_on_this_machine_only_with_xsrf_protection():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["address"] == "127.0.0.1"
    assert server["enableXsrfProtection"] is True
    assert server.get("enableCORS", True) is True
    assert config.get("browser", {}).get("gatherUsageStats") is False  # offline: nothing phones home


# -- nothing is unpickled -------------------------------------------------------------------------

def test_no_code_path_unpickles_a_file():
    """Every torch.load passes weights_only=True, every np.load allow_pickle=False; no pickle.load at all."""
    found = []
    for path in sorted([*(ROOT / "cvdemo").rglob("*.py"), *(ROOT / "pages").rglob("*.py"),
                        ROOT / "streamlit_app.py"]):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            kw = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if owner == "torch" and name == "load":
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                found.append((where, "torch.load", ok))
            elif owner in ("np", "numpy") and name == "load":
                ok = isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is False
                found.append((where, "np.load", ok))
            elif owner in ("pickle", "cPickle", "dill", "joblib", "marshal", "shelve") and name in ("load", "loads", "open"):
                found.append((where, f"{owner}.{name}", False))
    unsafe = [f for f in found if not f[2]]
    assert not unsafe, unsafe
    assert any(kind == "torch.load" for _, kind, _ in found)  # the scan does see the checkpoint loader


def test_run_store_reads_never_write(existing_run):
    """Listing, reading and predicting from a run folder leave it byte-for-byte as it was."""
    from cvdemo.predict import Classifier

    before = snapshot(existing_run)
    runs.list_runs(existing_run.parent)
    runs.read_status(existing_run)
    Classifier.from_run(existing_run).top([Image.new("RGB", (8, 8))], 3)
    assert snapshot(existing_run) == before
