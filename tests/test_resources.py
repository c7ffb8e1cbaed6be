"""Shipped files are found through the kernel: a checkout, an installed wheel, or an override; the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from privface.resources import EXAMPLES_DIR
from privface_core import resources
from privface_core.errors import SettingError
from privface_core.settings import settings


def test_checkout_finds_the_shipped_encoder_heads_and_examples():
    root = resources.artifacts_dir()
    assert (root / "encoder" / "dlib_face_recognition_resnet_v1.onnx").is_file()
    assert all((root / "fhe_head" / point / "meta.json").is_file() for point in ("accurate", "fast"))
    assert {"astronaut.jpg", "cameraman.jpg", "README.md"} <= {p.name for p in EXAMPLES_DIR.iterdir()}


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


def test_settings_are_typed_and_bad_values_named():
    env = {"PRIVFACE_SESSION_IDLE_S": "60", "PRIVFACE_SERVER_LIMITS": " max_keys=8 , max_key_idle_s=60,", "HOME": "/h"}
    read = settings(env)
    assert read.session_idle_s == 60.0 and read.sweep_s == 30 and read.url is None and read.artifacts is None
    assert read.server_limits == ("max_keys=8", "max_key_idle_s=60")
    assert settings({"XDG_CACHE_HOME": "/c"}).cache == Path("/c/privface")
    for name, value in [("PRIVFACE_SWEEP_S", "soon"), ("PRIVFACE_SESSION_IDLE_S", "-1"), ("PRIVFACE_MODE", "cloud")]:
        with pytest.raises(SettingError, match=name):
            getattr(settings({name: value}), name.removeprefix("PRIVFACE_").lower())
