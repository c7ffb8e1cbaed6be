from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from training.lfw import LFW, LFWNotFound, read_pairs, resolve_lfw_dir, unique_images


def _fake_lfw(root: Path, images_subdir: str | None) -> Path:
    """2 folds x (2 matched + 2 mismatched pairs), in the standard layout."""
    images = root / images_subdir if images_subdir else root
    fold_0 = ["Ann 1 2", "Bob 1 3", "Ann 1 Bob 2", "Cid 1 Ann 3"]
    fold_1 = ["Cid 2 3", "Ann 2 3", "Bob 1 Cid 1", "Ann 2 Cid 3"]
    lines = ["2\t2", *fold_0, *fold_1]
    (root / "pairs.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    for name in ("Ann", "Bob", "Cid"):
        (images / name).mkdir(parents=True)
        for i in (1, 2, 3):
            (images / name / f"{name}_{i:04d}.jpg").write_bytes(b"jpeg")
    return root


@pytest.mark.parametrize("subdir", [None, "images", "lfw"])
def test_standard_layout_from_any_path(tmp_path, subdir):
    lfw = LFW(_fake_lfw(tmp_path / "somewhere", subdir))
    pairs = lfw.view2()
    assert len(pairs) == 8
    assert [p.fold for p in pairs] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    assert pairs[0].left.name == "Ann_0001.jpg" and pairs[0].right.name == "Ann_0002.jpg"
    assert pairs[3].left.parent.name == "Cid" and pairs[3].right.name == "Ann_0003.jpg"
    assert all(p.left.is_file() and p.right.is_file() for p in pairs)


def test_location_from_environment(tmp_path, monkeypatch):
    root = _fake_lfw(tmp_path / "env", "images")
    monkeypatch.setenv("LFW_DIR", str(root))
    assert resolve_lfw_dir() == root
    monkeypatch.delenv("LFW_DIR")
    with pytest.raises(LFWNotFound, match="LFW_DIR"):
        resolve_lfw_dir()
    with pytest.raises(LFWNotFound, match="not an LFW directory"):
        resolve_lfw_dir(tmp_path)


def test_malformed_pairs_files_are_rejected(tmp_path):
    bad_count = tmp_path / "pairs.txt"
    bad_count.write_text("1\t2\nAnn 1 2\n")
    with pytest.raises(ValueError, match="header promises"):
        read_pairs(bad_count, tmp_path)
    wrong_order = tmp_path / "pairs2.txt"
    wrong_order.write_text("1\t1\nAnn 1 Bob 2\nAnn 1 2\n")
    with pytest.raises(ValueError, match="matched pair was expected"):
        read_pairs(wrong_order, tmp_path)


def test_real_view2_has_ten_folds_of_300_plus_300(lfw_dir):
    lfw = LFW(lfw_dir)
    pairs = lfw.view2()
    assert len(pairs) == 6000
    assert Counter((p.fold, p.same) for p in pairs) == {(f, s): 300 for f in range(10) for s in (True, False)}
    assert len(unique_images(pairs)) == 7701
    assert all(p.left.is_file() and p.right.is_file() for p in pairs)
    train, test = lfw.view1()
    assert (len(train), len(test)) == (2200, 1000)
    assert np.mean([p.same for p in train]) == 0.5
