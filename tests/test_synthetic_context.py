"""synthetic-context: deterministic, in the ADE20K layout, and unsolvable from local evidence."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hambench.data import check_layout, prepare_data
from hambench.data.synthetic_context import OBJECT_COLOURS, make_sample, make_synthetic_context


def test_same_seed_same_sample_other_seed_other_sample() -> None:
    a_img, a_lab = make_sample(np.random.default_rng(3), 64)
    b_img, b_lab = make_sample(np.random.default_rng(3), 64)
    c_img, _ = make_sample(np.random.default_rng(4), 64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)


def _median_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.median(image[mask], axis=0)


def test_labels_follow_the_key_rule() -> None:
    """Objects with the key's colour are `match` (3), the others `other` (4); one key (2)."""
    rng = np.random.default_rng(0)
    for _ in range(30):
        image, label = make_sample(rng, 96)
        assert set(np.unique(label)) <= {1, 2, 3, 4} and (label == 2).any()
        key = _median_colour(image, label == 2)
        if (label == 3).any():
            assert np.abs(_median_colour(image, label == 3) - key).max() < 30
        if (label == 4).any():  # every `other` pixel is far from the key colour
            assert (np.abs(image[label == 4].astype(float) - key).max(axis=1) > 60).mean() > 0.95


def test_colour_alone_does_not_give_the_label() -> None:
    """Every object colour is `match` in some images and `other` in others, so a model that
    only sees an object's own pixels cannot label it."""
    rng = np.random.default_rng(1)
    seen: dict[int, set[int]] = {}
    for _ in range(100):
        image, label = make_sample(rng, 64)
        for cls in (3, 4):
            pixels = image[label == cls].astype(float)  # (P, 3)
            nearest = np.abs(pixels[:, None] - OBJECT_COLOURS[None]).sum(-1).argmin(1)  # palette index
            for colour in np.unique(nearest):
                seen.setdefault(int(colour), set()).add(cls)
    assert len(seen) == len(OBJECT_COLOURS)
    assert all(classes == {3, 4} for classes in seen.values()), seen


def test_written_once_in_the_ade20k_layout(tmp_path) -> None:
    root = make_synthetic_context(tmp_path / "sc", seed=5, size=64, n_train=6, n_val=3)
    assert check_layout("ade20k", root) == root.resolve()
    images = sorted((root / "images" / "training").glob("*.jpg"))
    assert len(images) == 6 and len(list((root / "annotations" / "validation").glob("*.png"))) == 3
    label = np.array(Image.open(root / "annotations" / "training" / (images[0].stem + ".png")))
    assert label.shape == (64, 64) and set(np.unique(label)) <= {1, 2, 3, 4}
    stamp = images[0].stat().st_mtime_ns
    assert make_synthetic_context(tmp_path / "sc", seed=5, size=64, n_train=6, n_val=3) == root
    assert images[0].stat().st_mtime_ns == stamp  # cached: not written again

    again = make_synthetic_context(tmp_path / "sc2", seed=5, size=64, n_train=6, n_val=3)
    for a, b in zip(images, sorted((again / "images" / "training").glob("*.jpg"))):
        assert a.read_bytes() == b.read_bytes()  # deterministic per seed


def test_default_root_is_in_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HAMBENCH_CACHE", str(tmp_path))
    root = make_synthetic_context(None, seed=2, size=64, n_train=2, n_val=1)
    assert root.parent == tmp_path / "synthetic-context" and (root / "meta.json").is_file()
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_unknown_data_set_is_named() -> None:
    with pytest.raises(ValueError, match="unknown data set 'cityscapes'"):
        prepare_data("cityscapes", None, 0)
