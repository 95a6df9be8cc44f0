"""A missing or wrongly laid-out data root is one named error (``hambench.data.DataRootError``)
whose one-line message names the data set, the path looked at and the layout expected."""

from __future__ import annotations

from pathlib import Path

import pytest

import hambench.data
from hambench.data import DATASETS, DataRootError, make_fixture, prepare_data
from hambench.data.image_folder import image_folder

# What each real data set's message must show of the layout it expects.
EXPECTED = {
    "ade20k": "images/training/*.jpg, images/validation/*.jpg, annotations/training/*.png and "
    "annotations/validation/*.png",
    "voc-aug": "JPEGImages/*.jpg, SegmentationClass/*.png, SegmentationClassAug/*.png",
    "pascal-context": "JPEGImages/*.jpg, SegmentationClassContext/*.png",
}


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


def test_the_error_is_a_value_error_importable_from_hambench_data() -> None:
    assert issubclass(hambench.data.DataRootError, ValueError)
    assert hambench.data.DataLayoutError is DataRootError  # the former name, the same class


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_missing_root_names_the_set_the_path_and_the_layout(name: str, tmp_path: Path) -> None:
    with pytest.raises(DataRootError) as exc:
        prepare_data(name, tmp_path / "absent", 0)
    assert one_line(exc) == f"{name}: data root {tmp_path / 'absent'} does not exist; expected {DATASETS[name].layout}"
    assert EXPECTED[name] in str(exc.value)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_no_root_given_says_which_flag(name: str) -> None:
    with pytest.raises(DataRootError) as exc:
        prepare_data(name, None, 0)
    assert one_line(exc).startswith(f"{name}: no data root given (--data-root DIR); expected ")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_required_path_is_named_when_it_is_missing(name: str, tmp_path: Path) -> None:
    root = make_fixture(name, tmp_path / name, n_train=1, n_val=1, size=16)
    for rel in DATASETS[name].required:
        moved = root / rel
        aside = moved.with_name(moved.name + ".aside")
        moved.rename(aside)
        with pytest.raises(DataRootError) as exc:
            prepare_data(name, root, 0)
        assert one_line(exc).startswith(f"{name}: {moved} is missing; expected "), rel
        aside.rename(moved)
    assert prepare_data(name, root, 0) == root  # all back: the layout passes


def test_an_empty_image_folder_is_named(tmp_path: Path) -> None:
    root = make_fixture("voc-aug", tmp_path / "voc", n_train=1, n_val=1, size=16)
    for image in (root / "JPEGImages").glob("*.jpg"):
        image.unlink()
    with pytest.raises(DataRootError) as exc:
        prepare_data("voc-aug", root, 0)
    assert one_line(exc).startswith(f"voc-aug: no *.jpg file in {root / 'JPEGImages'}; expected ")


def test_the_parent_of_the_data_set_folder_is_pointed_at_the_folder(tmp_path: Path) -> None:
    make_fixture("ade20k", tmp_path / "data" / "ADEChallengeData2016", n_train=1, n_val=1, size=16)
    with pytest.raises(DataRootError) as exc:
        prepare_data("ade20k", tmp_path / "data", 0)
    inside = tmp_path / "data" / "ADEChallengeData2016"
    assert one_line(exc).startswith(
        f"ade20k: data root {tmp_path / 'data'} holds ADEChallengeData2016/: pass --data-root {inside}; "
    )


def test_a_file_where_the_root_should_be(tmp_path: Path) -> None:
    (tmp_path / "ade.zip").write_bytes(b"PK")
    with pytest.raises(DataRootError) as exc:
        prepare_data("ade20k", tmp_path / "ade.zip", 0)
    assert one_line(exc).startswith(f"ade20k: data root {tmp_path / 'ade.zip'} is not a directory; ")


def test_an_image_folder_root_is_named_too(tmp_path: Path) -> None:
    with pytest.raises(DataRootError) as exc:
        image_folder(tmp_path / "absent", 32)
    assert one_line(exc).startswith(
        f"image-folder: data root {tmp_path / 'absent'} does not exist; expected one folder per class"
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataRootError) as exc:
        image_folder(tmp_path / "empty", 32)
    assert one_line(exc).startswith(f"image-folder: data root {tmp_path / 'empty'}: ")
