"""synthetic-context: deterministic, in the ADE20K layout, every object labelled by the far-away key."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hambench.data import check_layout, prepare_data
from hambench.data.synthetic_context import (
    KEY_COLOURS,
    MIN_KEY_DISTANCE,
    OBJECT_GREY,
    make_sample,
    make_synthetic_context,
)


def test_same_seed_same_sample_other_seed_other_sample() -> None:
    a_img, a_lab = make_sample(np.random.default_rng(3), 64)
    b_img, b_lab = make_sample(np.random.default_rng(3), 64)
    c_img, _ = make_sample(np.random.default_rng(4), 64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)


def _assert_key_rule(image: np.ndarray, label: np.ndarray, key_share: float = 0.9) -> None:
    """One key; every non-background pixel, grey object or key, has the class of the key's colour;
    the objects are grey whatever their class (their own pixels do not tell it)."""
    classes = set(np.unique(label).tolist())
    assert 1 in classes and len(classes - {1}) == 1, classes  # background and exactly one group
    cls = max(classes)
    coloured = np.ptp(image.astype(float), axis=2) > 60  # the key: far from any grey
    nearest = np.abs(image[coloured].astype(float)[:, None] - KEY_COLOURS[None]).sum(-1).argmin(1)
    assert np.bincount(nearest, minlength=len(KEY_COLOURS)).argmax() == cls - 2  # key colour -> class
    assert (label[coloured] == cls).mean() > key_share  # the coloured pixels are the key, labelled with it
    objects = (label == cls) & ~coloured
    assert np.abs(np.median(image[objects], axis=0) - OBJECT_GREY).max() < 15


def test_every_object_pixel_has_the_key_colours_class() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        _assert_key_rule(*make_sample(rng, 96))


def test_objects_are_far_from_the_key_and_every_group_occurs() -> None:
    """Objects keep MIN_KEY_DISTANCE from the key, and every group occurs: an object's look
    alone (grey in every image) cannot give its class."""
    rng = np.random.default_rng(1)
    groups, size = set(), 64
    yy, xx = np.mgrid[:size, :size]
    for _ in range(60):
        image, label = make_sample(rng, size)
        coloured = np.ptp(image.astype(float), axis=2) > 60
        key_y, key_x = yy[coloured].mean(), xx[coloured].mean()
        objects = (label > 1) & ~coloured
        distance = np.hypot(yy[objects] - key_y, xx[objects] - key_x)
        assert distance.min() >= MIN_KEY_DISTANCE * size - size // 10 - 3  # centre distance minus a radius
        groups.add(int(label.max()))
    assert groups == {2, 3}


def test_written_once_in_the_ade20k_layout(tmp_path) -> None:
    root = make_synthetic_context(tmp_path / "sc", seed=5, size=64, n_train=6, n_val=3, n_test=2)
    assert check_layout("ade20k", root) == root.resolve()
    images = sorted((root / "images" / "training").glob("*.jpg"))
    assert len(images) == 6 and len(list((root / "annotations" / "validation").glob("*.png"))) == 3
    label = np.array(Image.open(root / "annotations" / "training" / (images[0].stem + ".png")))
    assert label.shape == (64, 64) and set(np.unique(label)) <= {1, 2, 3}
    for image in images:  # the rule survives JPEG on disk (whose chroma subsampling bleeds the key's rim)
        _assert_key_rule(
            np.array(Image.open(image)),
            np.array(Image.open(root / "annotations" / "training" / (image.stem + ".png"))),
            key_share=0.6,
        )
    stamp = images[0].stat().st_mtime_ns
    assert make_synthetic_context(tmp_path / "sc", seed=5, size=64, n_train=6, n_val=3, n_test=2) == root
    assert images[0].stat().st_mtime_ns == stamp  # cached: not written again

    again = make_synthetic_context(tmp_path / "sc2", seed=5, size=64, n_train=6, n_val=3, n_test=2)
    for a, b in zip(images, sorted((again / "images" / "training").glob("*.jpg"))):
        assert a.read_bytes() == b.read_bytes()  # deterministic per seed


def test_default_root_is_in_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HAMBENCH_CACHE", str(tmp_path))
    root = make_synthetic_context(None, seed=2, size=64, n_train=2, n_val=1, n_test=1)
    assert root.parent == tmp_path / "synthetic-context" and (root / "meta.json").is_file()
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_unknown_data_set_is_named() -> None:
    with pytest.raises(ValueError, match="unknown data set 'cityscapes'"):
        prepare_data("cityscapes", None, 0)
