"""The data audit (cvdemo.audit, `cvdemo audit`) on a folder with planted problems, and its parts on small inputs."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from audit_data import planted_folder
from helpers import cvdemo

from cvdemo.audit import KINDS, NEAR_THRESHOLD, AuditReport, Finding, Item, audit, audit_html, item_picture
from cvdemo.audit.duplicates import exact_groups, group_finding, near_groups
from cvdemo.audit.images import PixelStats, balance_findings, file_facts, image_findings, pixel_stats
from cvdemo.errors import DataError

SIZE = 64  # features at 64 px: fast, and enough to tell the planted problems apart


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_folder(tmp_path_factory.mktemp("audit"))


@pytest.fixture(scope="module")
def report(planted):
    return audit(str(planted.root), image_size=SIZE)


def rel(planted, item: Item) -> str:
    return item.path.split(str(planted.root) + "/", 1)[-1]


def names(planted, finding: Finding) -> set[str]:
    return {rel(planted, i) for i in finding.items}


@pytest.mark.slow
def test_finds_the_byte_identical_pair_across_splits_as_leakage_with_conflicting_labels(planted, report):
    exact = report.by_kind("exact_duplicate")
    assert len(exact) == 1, "only the planted twin is an exact duplicate: nothing clean is reported"
    f = exact[0]
    assert names(planted, f) == set(planted.exact)
    assert f.leakage and f.conflicting
    assert [i.split for i in f.items] == ["train", "test"]  # the training copy first
    assert {i.label for i in f.items} == {"discs", "squares"}


@pytest.mark.slow
def test_finds_the_resized_jpeg_copy_as_a_near_duplicate(planted, report):
    near = [f for f in report.by_kind("near_duplicate") if set(planted.near) <= names(planted, f)]
    assert len(near) == 1
    assert NEAR_THRESHOLD <= near[0].score <= 1.0
    assert not near[0].leakage and not near[0].conflicting  # both in train/squares
    # no near-duplicate group is made of the exact pair alone
    assert all(names(planted, f) != set(planted.exact) for f in report.by_kind("near_duplicate"))


@pytest.mark.slow
def test_ranks_the_swapped_labels_among_the_top_label_issues(planted, report):
    issues = report.by_kind("label_issue")
    ranked = [rel(planted, f.items[0]) for f in issues]
    for name in planted.swapped:
        assert name in ranked, f"{name} not flagged; flagged: {ranked}"
    # the others above them are planted problems too (the twin pair, the blank image) or one clean image at most
    top = ranked[:len(planted.swapped) + 4]
    assert set(planted.swapped) <= set(top), ranked
    swapped = next(f for f in issues if rel(planted, f.items[0]) == planted.swapped[0])
    assert swapped.suggested == "discs" and swapped.items[0].label == "squares"


@pytest.mark.slow
def test_finds_the_blank_the_tiny_and_the_unreadable_image(planted, report):
    def flagged(kind):
        return {rel(planted, i) for f in report.by_kind(kind) for i in f.items}

    assert flagged("blank") == {planted.blank}
    assert flagged("tiny") == {planted.tiny}
    assert flagged("unreadable") == {planted.unreadable}
    assert flagged("aspect_ratio") == set() and flagged("grayscale") == set() and flagged("small_class") == set()
    assert report.counts["train"] and sum(map(sum, report.counts.values())) == report.images


@pytest.mark.slow
def test_json_csv_and_html_name_each_finding_with_paths_splits_labels_and_scores(planted, report):
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["summary"]["exact_duplicate"] == 1 and payload["summary"]["leakage"] == 1
    assert payload["near_threshold"] == NEAR_THRESHOLD and payload["model"] == "efficientnet_lite0"
    for f in payload["findings"]:
        assert f["kind"] in KINDS and 0.0 <= f["score"] <= 1.0
        for item in f["items"]:
            assert set(item) == {"split", "index", "label", "path", "file"}
    twin = next(f for f in payload["findings"] if f["kind"] == "exact_duplicate")
    assert {(i["split"], i["label"]) for i in twin["items"]} == {("train", "discs"), ("test", "squares")}
    rows = report.csv_rows()
    assert sum(r["kind"] == "exact_duplicate" for r in rows) == 2
    assert report.to_csv().splitlines()[0].startswith("finding,kind,score,path,split,label")
    picture = item_picture(report.bundle, report.by_kind("near_duplicate")[0].items[0])
    assert picture is not None and picture.size == (SIZE, SIZE)
    html = audit_html(report, lambda item: item_picture(report.bundle, item))
    assert html.count("data:image/png;base64,") >= 10 and "twin.png" in html
    flagged = report.flagged_paths()
    assert any(p.endswith("test/squares/twin.png") for p in flagged)
    assert not any(p.endswith(planted.near[0]) for p in flagged)  # the first of a group is kept
    assert any(p.endswith(planted.near[1]) for p in flagged)


@pytest.mark.slow
def test_cli_audit_prints_json_and_writes_the_html_report(planted, tmp_path):
    from cvdemo.audit.store import data_warning
    from cvdemo.config import RunConfig

    out, root = tmp_path / "audit.html", tmp_path / "runs"
    done = cvdemo("audit", str(planted.root), "--image-size", str(SIZE), "--json", "--out", str(out),
                  "--near-threshold", "0.99", "--root", str(root))
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    assert payload["near_threshold"] == 0.99 and payload["summary"]["exact_duplicate"] == 1
    assert payload["summary"]["near_duplicate"] == 0  # the planted pair is 0.9-0.96 alike: not at 0.99
    assert out.read_text().startswith("<!doctype html>") and payload["written"]["out"] == str(out)
    assert "computing the frozen backbone's features" in done.stderr
    # remembered as the Data page's check is: Evaluate warns about a run trained on this data
    assert Path(payload["remembered"]).parent == root / ".audits"
    warning = data_warning(RunConfig.from_dict({"data": {"source": str(planted.root)}}), root)
    assert warning and "1 group of duplicate images sit in both the training and the held-out images" in warning


def test_missing_folder_and_hostile_zip_are_one_sentence_errors(tmp_path):
    with pytest.raises(DataError, match=r"does not exist: check the path") as missing:
        audit(str(tmp_path / "nowhere"))
    assert "\n" not in str(missing.value)
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as zf:
        zf.writestr("../../etc/evil.png", b"x")
        zf.writestr("cats/a.png", b"y")
    with pytest.raises(DataError, match=r"points outside the archive") as refused:
        audit(str(hostile))
    assert "\n" not in str(refused.value)
    with pytest.raises(DataError, match="cosine similarity above 0 and at most 1"):
        audit(str(tmp_path), near_threshold=1.5)


def test_cli_bad_input_is_one_line_on_stderr(tmp_path, capsys):
    from cvdemo.cli import main

    assert main(["audit", str(tmp_path / "missing.zip")]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "zip file" in err and "does not exist" in err
    assert main(["audit", "digits", "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err


def test_cli_threshold_default_is_the_core_one():
    from cvdemo.cli import audit as cli_audit

    assert cli_audit.NEAR_THRESHOLD == NEAR_THRESHOLD


def test_exact_groups_join_equal_hashes_and_ignore_unreadable_files():
    assert exact_groups(["a", "b", "a", "unreadable:x", "unreadable:x", "c", "b"]) == [[0, 2], [1, 6]]
    assert exact_groups(["a", "b"]) == []


def test_near_groups_join_pairs_over_the_threshold_transitively():
    # 5 images, 2 neighbours each (cosine distances): 0~1 (0.02), 1~2 (0.05), 3~4 (0.3, too far)
    distances = np.array([[0.02, 0.5], [0.02, 0.05], [0.05, 0.6], [0.3, 0.7], [0.3, 0.8]])
    neighbours = np.array([[1, 3], [0, 2], [1, 0], [4, 0], [3, 1]])
    groups = near_groups(distances, neighbours, 0.9, exact=[])
    assert groups == [([0, 1, 2], pytest.approx(0.98))]
    assert near_groups(distances, neighbours, 0.9, exact=[[0, 1, 2]]) == []  # already an exact group
    assert len(near_groups(distances, neighbours, 0.6, exact=[])) == 2


def test_group_finding_flags_leakage_only_between_train_and_held_out_splits():
    items = [Item("val", 0, "cat", "v.png"), Item("test", 0, "cat", "t.png"), Item("train", 3, "dog", "a.png")]
    labels = np.array([0, 0, 1])
    both = group_finding("near_duplicate", [0, 2], items, labels, 0.95, "alike")
    assert both.leakage and both.conflicting and [i.split for i in both.items] == ["train", "val"]
    held_out = group_finding("near_duplicate", [0, 1], items, labels, 0.95, "alike")
    assert not held_out.leakage and not held_out.conflicting


def test_image_checks_on_known_pixels_and_sizes():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (4, 3, 16, 16)).astype(np.uint8)
    batch[1] = 200                                        # blank
    batch[2] = batch[2, :1]                               # grey: three equal channels
    stats = pixel_stats(batch)
    items = [Item("train", i, "a", f"{i}.png") for i in range(4)]

    class Fact:
        def __init__(self, w, h):
            self.width, self.height, self.digest = w, h, ""

    facts = [Fact(64, 64), Fact(64, 64), Fact(64, 64), Fact(300, 40)]
    found = {(f.kind, f.items[0].path) for f in image_findings(items, stats, facts, colour=True)}
    assert found == {("blank", "1.png"), ("grayscale", "2.png"), ("aspect_ratio", "3.png")}
    assert not image_findings(items, stats, facts, colour=False) == []  # blank is still found in grey sets
    tiny = image_findings(items[:1], PixelStats(np.array([50.0]), np.array([30.0])), [Fact(2, 2)], colour=True)
    assert [f.kind for f in tiny] == []  # a data set of 2x2 images is not "tiny" relative to itself


def test_file_facts_hash_bytes_and_refuse_non_images(tmp_path):
    from PIL import Image

    Image.new("RGB", (5, 3)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    facts = file_facts(data, "a.png")
    assert (facts.width, facts.height) == (5, 3) and facts.digest == file_facts(data, "b.png").digest
    with pytest.raises(DataError, match="not a readable image"):
        file_facts(b"hello", "hello.png")


def test_balance_flags_a_class_far_below_the_median():
    found = balance_findings(["a", "b", "c"], {"train": [40, 38, 3], "test": [10, 10, 1]})
    assert [f.detail.split("'")[1] for f in found] == ["c"] and found[0].items == []
    assert balance_findings(["a", "b"], {"train": [10, 9]}) == []


def test_report_summary_counts_every_kind_and_orders_findings():
    r = AuditReport("x", "m", 32, 0.9, ["a"], {"train": [1]}, findings=[
        Finding("outlier", 0.2, [Item("train", 0, "a", "p")], ""),
        Finding("exact_duplicate", 0.9, [Item("train", 1, "a", "q"), Item("test", 0, "a", "r")], "", leakage=True)])
    s = r.summary()
    assert set(KINDS) <= set(s) and s["outlier"] == 1 and s["leakage"] == 1 and s["label_issue"] == 0
    assert [f["kind"] for f in r.to_dict()["findings"]] == ["exact_duplicate", "outlier"]
    assert r.flagged_paths() == ["p", "r"]


def test_a_configs_exclusion_list_leaves_files_out_of_every_split_and_deletes_nothing(tmp_path):
    from urllib.parse import quote

    from PIL import Image

    from cvdemo.config import RunConfig
    from cvdemo.data import load_dataset

    for cls in ("a", "b"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "d" / cls / f"x {i},{cls}.png")
    name = "a/x 0,a.png"
    config = RunConfig.from_dict({"data": {"source": str(tmp_path / "d"), "exclude": [quote(name)]}})
    assert config.data.exclude == ("a/x%200%2Ca.png",)
    assert RunConfig.from_json(config.to_json()) == config
    # a comma-separated form field round-trips it too (spaces and commas are encoded)
    assert RunConfig.from_dict({"data": {"exclude": ", ".join(config.data.exclude)}}).data.exclude == config.data.exclude
    full = load_dataset(tmp_path / "d", exclude=())
    fewer = load_dataset(tmp_path / "d", exclude=config.data.exclude)
    names = [n for s in (fewer.train, fewer.val, fewer.test) for n in s.names]
    assert len(names) == 11 and name not in names
    assert sum(len(s) for s in (full.train, full.val, full.test)) == 12
    assert (tmp_path / "d" / name).exists()
    with pytest.raises(DataError, match="exclude lists files of a folder or zip"):
        load_dataset("digits", exclude=["a.png"])


@pytest.mark.slow
def test_report_exclusion_lists_flagged_files_inside_the_folder(planted, report):
    assert report.exclusion(["exact_duplicate"]) == ["test/squares/twin.png"]  # the training copy stays
    assert report.exclusion(["near_duplicate", "blank", "tiny"]) == sorted([planted.near[1], planted.blank,
                                                                           planted.tiny])
    assert report.exclusion(["unreadable"]) == [planted.unreadable]


def test_a_remembered_check_warns_about_runs_on_that_data_until_they_leave_the_copies_out(tmp_path):
    from cvdemo.audit.store import data_warning, known_problems, remember
    from cvdemo.config import RunConfig

    twin = [Item("train", 0, "cat", "/d/train/cat/a.png", "train/cat/a.png"),
            Item("test", 3, "dog", "/d/test/dog/a b.png", "test/dog/a b.png")]
    report = AuditReport("/d", "m", 64, 0.9, ["cat", "dog"], {}, split_settings={"seed": 3, "val_fraction": 0.1,
                                                                                 "test_fraction": 0.2})
    report.findings = [group_finding("exact_duplicate", [0, 1], twin, np.array([0, 1]), 1.0, "same"),
                       Finding("outlier", 0.5, [twin[0]], "odd")]
    remember(report, tmp_path)
    config = RunConfig.from_dict({"data": {"source": "/d"}, "train": {"seed": 3}})
    assert known_problems(config, tmp_path) == {"leakage": 1, "conflicting": 1}
    sentence = data_warning(config, tmp_path)
    assert "1 group of duplicate images sit in both the training and the held-out images" in sentence
    assert "test number may be optimistic" in sentence and "\n" not in sentence
    assert known_problems(config.replace(train={"seed": 4}), tmp_path) is None  # other splits: never checked
    fixed = config.replace(data={"exclude": report.exclusion(["exact_duplicate"])})
    assert fixed.data.exclude == ("test/dog/a%20b.png",)
    assert known_problems(fixed, tmp_path) == {"leakage": 0, "conflicting": 0}
    assert data_warning(fixed, tmp_path) is None


def test_train_help_shows_the_exclusion_flag_and_builtin_data_refuses_a_list(capsys):
    from cvdemo.cli import build_parser, main

    with pytest.raises(SystemExit) as done:  # a '%' in a field's help would crash argparse here
        build_parser().parse_args(["train", "--help"])
    assert done.value.code == 0 and "--exclude LIST" in capsys.readouterr().out
    assert main(["train", "--data", "digits", "--exclude", "a.png"]) == 2
    assert "the built-in digits has none" in capsys.readouterr().err
