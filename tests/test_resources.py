"""Shipped files are found through the package: a checkout, an installed wheel, or an override."""

from __future__ import annotations

from pathlib import Path

from privface import resources


def test_checkout_finds_the_shipped_encoder_heads_and_examples():
    root = resources.artifacts_dir()
    assert (root / "encoder" / "dlib_face_recognition_resnet_v1.onnx").is_file()
    assert all((root / "fhe_head" / point / "meta.json").is_file() for point in ("accurate", "fast"))
    assert {"astronaut.jpg", "cameraman.jpg", "README.md"} <= {p.name for p in resources.EXAMPLES_DIR.iterdir()}


def test_installed_copy_is_used_without_a_checkout(monkeypatch, tmp_path: Path):
    installed = tmp_path / "share" / "privface" / "artifacts"
    installed.mkdir(parents=True)
    monkeypatch.delenv("PRIVFACE_ARTIFACTS", raising=False)
    monkeypatch.setattr(resources, "_CHECKOUT", tmp_path / "no-checkout")
    monkeypatch.setattr(resources, "_INSTALLED", installed)
    assert resources.artifacts_dir() == installed


def test_environment_override_wins(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PRIVFACE_ARTIFACTS", str(tmp_path))
    assert resources.artifacts_dir() == tmp_path


def test_wheel_metadata_ships_the_artifacts():
    """pyproject's data-files name every file an installed copy needs (checked without building a wheel)."""
    import tomllib

    config = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]
    data_files = config["data-files"]
    root = Path(__file__).parents[1]
    shipped = {str(p.relative_to(root)) for patterns in data_files.values() for g in patterns for p in root.glob(g)}
    for point in ("accurate", "fast"):
        for name in ("server.zip", "client.specs.json", "client.zip", "head.json", "meta.json"):
            assert f"artifacts/fhe_head/{point}/{name}" in shipped
    assert "artifacts/encoder/dlib_face_recognition_resnet_v1.onnx" in shipped
    assert "examples/*" in config["package-data"]["privface"]
