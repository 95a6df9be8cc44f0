"""The tuning protocol's splits: synthetic-context's own test split (drawn after the others, so the
training and validation images are unchanged), the real sets' val held out of the training split
(every 20th image, official val as test), ``standard`` as before, and ``eval_split`` end to end."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from hambench.cli.main import main
from hambench.data import (
    DATASETS,
    HOLDOUT_EVERY,
    DataRootError,
    check_layout,
    dataset_spec,
    make_fixture,
    make_synthetic_context,
    split_kwargs,
)
from hambench.data.synthetic_context import VERSION
from hambench.tasks.seg import SegConfig


def _files(root: Path, split: str) -> list[Path]:
    return sorted((root / "images" / split).glob("*.jpg")) + sorted((root / "annotations" / split).glob("*.png"))


def _paths(dataset_cfg: dict) -> list[str]:
    """The image paths of the mmseg dataset that ``dataset_cfg`` builds, in its order."""
    from mmseg.registry import DATASETS as MMSEG_DATASETS

    from hambench.models.registration import register_all

    register_all()
    dataset = MMSEG_DATASETS.build(dataset_cfg)
    return [dataset.get_data_info(i)["img_path"] for i in range(len(dataset))]


def _build(data: str, root: Path, split: dict) -> list[str]:
    """The image paths mmseg's dataset class lists for split arguments ``split`` of ``root``."""
    from hambench.tasks.seg.data import dataset

    return _paths(dataset(data, root, split, pipeline=[]))


# --------------------------------------------------------------------------- synthetic-context


def test_synthetic_test_split_has_n_test_images_unlike_the_others(tmp_path: Path) -> None:
    root = make_synthetic_context(tmp_path / "sc", seed=1, size=48, n_train=6, n_val=3, n_test=4)
    assert check_layout("ade20k", root) == root.resolve()  # still read as ADE20K
    images = sorted((root / "images" / "test").glob("*.jpg"))
    labels = sorted((root / "annotations" / "test").glob("*.png"))
    assert len(images) == 4 and [p.stem for p in images] == [p.stem for p in labels]
    assert json.loads((root / "meta.json").read_text())["n_test"] == 4
    others = {p.read_bytes() for p in _files(root, "training") + _files(root, "validation") if p.suffix == ".jpg"}
    assert len(others) == 9 and not others & {p.read_bytes() for p in images}  # different images


def test_the_test_split_leaves_training_and_validation_unchanged(tmp_path: Path) -> None:
    without = make_synthetic_context(tmp_path / "a", seed=3, size=48, n_train=5, n_val=3, n_test=0)
    with_test = make_synthetic_context(tmp_path / "b", seed=3, size=48, n_train=5, n_val=3, n_test=5)
    assert (
        not list((without / "images" / "test").iterdir()) and len(list((with_test / "images" / "test").iterdir())) == 5
    )
    for split in ("training", "validation"):
        a, b = _files(without, split), _files(with_test, split)
        assert [p.name for p in a] == [p.name for p in b] and len(a) == 2 * (5 if split == "training" else 3)
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b)), split


def test_the_cache_folder_names_the_test_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAMBENCH_CACHE", str(tmp_path))
    root = make_synthetic_context(None, seed=0, size=48, n_train=2, n_val=1, n_test=2)
    assert VERSION == 7 and root == tmp_path / "synthetic-context" / "v7-s48-n2-1-2-seed0"
    with pytest.raises(ValueError, match="n_test=-1"):
        make_synthetic_context(tmp_path / "bad", n_test=-1)


def test_synthetic_splits_are_its_own_folders(tmp_path: Path) -> None:
    root = make_synthetic_context(tmp_path / "sc", seed=0, size=48, n_train=2, n_val=1, n_test=1)
    spec = dataset_spec("synthetic-context")
    folders = {
        split: [kw["data_prefix"]["img_path"] for kw in split_kwargs(spec, root, split)]
        for split in ("standard", "val", "test")
    }
    # standard: every untuned run reports on the test split (validation served the task's design)
    assert folders == {
        "standard": ["images/training", "images/test"],
        "val": ["images/training", "images/validation"],
        "test": ["images/training", "images/test"],
    }
    for split in ("standard", "val", "test"):  # nothing held out: its training split is whole
        assert all("indices" not in kw for kw in split_kwargs(spec, root, split))


def test_a_synthetic_root_without_a_test_split_is_named(tmp_path: Path) -> None:
    root = make_synthetic_context(tmp_path / "sc", seed=0, size=48, n_train=2, n_val=1, n_test=1)
    (root / "images" / "test" / "synctx_test_000000.jpg").unlink()
    (root / "images" / "test").rmdir()  # a set written before the test split existed
    with pytest.raises(DataRootError, match=r"images/test is missing \(the test split\)"):
        split_kwargs(dataset_spec("synthetic-context"), root, "test")
    assert split_kwargs(dataset_spec("synthetic-context"), root, "val")  # val does not need it


# --------------------------------------------------------------------------- the real sets


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_real_sets_hold_out_every_20th_training_image_as_val(name: str, tmp_path: Path) -> None:
    root = make_fixture(name, tmp_path / name, n_train=41, n_val=3, size=16)
    spec = DATASETS[name]
    standard_train, standard_eval = split_kwargs(spec, root, "standard")
    assert (standard_train, standard_eval) == (spec.train, spec.val)  # the full official pair, no indices
    every = _build(name, root, standard_train)
    assert len(every) == 41

    val_train, val_eval = split_kwargs(spec, root, "val")
    assert HOLDOUT_EVERY == 20 and val_eval["indices"] == [0, 20, 40]
    assert val_train["indices"] == [i for i in range(41) if i not in (0, 20, 40)]
    held_out, trained = _build(name, root, val_eval), _build(name, root, val_train)
    assert held_out == every[::20] and trained == [p for p in every if p not in held_out]

    test_train, test_eval = split_kwargs(spec, root, "test")
    assert test_train == val_train  # the same training set for selection and report
    assert _build(name, root, test_eval) == _build(name, root, standard_eval)  # the official val plays test
    assert len(_build(name, root, test_eval)) == 3


def test_a_training_split_too_small_to_hold_out_is_named(tmp_path: Path) -> None:
    root = make_fixture("voc-aug", tmp_path / "voc", n_train=1, n_val=1, size=16)
    with pytest.raises(DataRootError, match="has 1 image"):
        split_kwargs(DATASETS["voc-aug"], root, "val")
    assert split_kwargs(DATASETS["voc-aug"], root, "standard")  # standard needs no holdout


# --------------------------------------------------------------------------- eval_split


def test_a_bad_eval_split_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'bad' is not one of standard, val, test"):
        SegConfig(eval_split="bad")
    with pytest.raises(ValueError, match="standard, val, test"):
        split_kwargs(DATASETS["ade20k"], ".", "train")
    assert SegConfig().eval_split == "standard"


def test_a_suite_trial_evaluates_on_its_split(tmp_path: Path) -> None:
    from hambench.suite import parse_suite
    from hambench.tasks import get_task
    from hambench.tuning.plan import expand
    from hambench.tuning.trainable import TuneContext

    class Context(TuneContext):
        def work_dir(self) -> Path:
            return tmp_path

        def restore(self, into: Path | None = None) -> None:
            return None

    suite = parse_suite(
        yaml.safe_load(
            textwrap.dedent("""
        name: s
        description: splits
        task: seg
        grid: {modules: [none], backbones: [tiny-d8], data: [synthetic-context]}
        budget: {iters: 4, eval_interval: 2}
    """)
        ),
        "s.yaml",
    )
    (trial,) = expand(suite)
    ctx = Context(plugins=[], done_uri=str(tmp_path / "done"), data_roots={}, where={"device": "cpu"})
    seg = get_task("seg")
    assert seg.config_for(trial, ctx).eval_split == "standard"  # a plain suite: as before
    for split in ("val", "test"):
        assert seg.config_for(trial.model_copy(update={"split": split}), ctx).eval_split == split


def test_cli_eval_split_test_trains_and_evaluates_on_the_test_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import hambench.tasks.seg.loop as loop

    monkeypatch.setenv("HAMBENCH_CACHE", str(tmp_path / "cache"))
    root = make_synthetic_context(tmp_path / "sc", seed=0, size=48, n_train=4, n_val=2, n_test=3)
    used: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> dict[str, Any]:  # the Runner arguments the run was given
        used.append(runner_arguments(*args, **kwargs))
        return used[-1]

    runner_arguments = loop.runner_arguments
    monkeypatch.setattr(loop, "runner_arguments", spy)
    with pytest.raises(SystemExit):
        main(["train", "seg", "--help"])
    assert "--eval-split" in capsys.readouterr().out
    argv = ["train", "seg", "--context", "none", "--backbone", "tiny-d8", "--data", "synthetic-context"]
    argv += ["--data-root", str(root), "--iters", "2", "--batch", "2", "--crop", "48x48", "--eval-interval", "2"]
    argv += ["--work-dir", str(tmp_path / "run"), "--threads", "1", "--log-interval", "2", "--eval-split", "test"]
    rc = main([*argv, "--json"])
    assert rc == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["iters"] == 2 and 0 <= final["mIoU"] <= 100
    (kwargs,) = used
    evaluated = _paths(kwargs["val_dataloader"]["dataset"])
    trained = _paths(kwargs["train_dataloader"]["dataset"])
    assert len(evaluated) == 3 and all(Path(p).parent == root / "images" / "test" for p in evaluated)
    assert len(trained) == 4 and all(Path(p).parent == root / "images" / "training" for p in trained)
