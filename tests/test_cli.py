import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.conftest import ASTRONAUT, CAT


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client_encoder", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_embed_prints_json_embeddings():
    result = run_cli("embed", str(ASTRONAUT))
    assert result.returncode == 0, result.stderr
    [record] = json.loads(result.stdout)
    assert len(record["embedding"]) == 256 and record["faces_found"] == 1
    assert record["encoder"] == "fused" and record["tta"] == "flip" and len(record["face"]["landmarks"]) == 5
    assert abs(np.linalg.norm(record["embedding"]) - 1) < 1e-4  # dlib's and SFace's unit vectors, weighted
    [dlib] = json.loads(run_cli("--encoder", "dlib", "embed", str(ASTRONAUT)).stdout)
    assert dlib["encoder"] == "dlib" and dlib["tta"] == "jitter" and np.linalg.norm(dlib["embedding"]) > 1.1


def test_embed_reports_each_bad_photo_and_fails(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(ASTRONAUT.read_bytes()[:2000])
    result = run_cli("--encoder", "dlib", "--tta", "none", "embed", str(ASTRONAUT), str(CAT), str(broken))
    assert result.returncode == 1
    ok, cat, bad = json.loads(result.stdout)
    assert "embedding" in ok and ok["tta"] == "none"
    assert cat["error_type"] == "NoFaceError"
    assert bad["error_type"] == "InvalidImageError" and "truncated" in bad["error"]
    assert result.stderr.splitlines() == [f"error: {cat['error']}", f"error: {bad['error']}"]
    assert cat["error"] == f"{CAT}: no face found in the image" and bad["error"].startswith(f"{broken}: ")


def test_compare_shows_distance_threshold_and_verdict(tmp_path):
    mirrored = tmp_path / "mirrored.png"
    Image.fromarray(np.asarray(Image.open(ASTRONAUT))[:, ::-1]).save(mirrored)
    result = run_cli("compare", str(ASTRONAUT), str(mirrored), "--json")
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["same_person"] is True and verdict["distance"] < verdict["threshold"]
    assert "not private" in verdict["mode"]
    text = run_cli("compare", str(ASTRONAUT), str(mirrored))
    assert text.stdout.startswith("SAME person: distance") and "threshold" in text.stdout


def test_compare_with_a_non_image_is_a_clear_error(tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    result = run_cli("compare", str(ASTRONAUT), str(text_file))
    assert result.returncode == 1
    assert "not an image" in result.stderr and "Traceback" not in result.stderr


def test_different_people_exit_3_with_options_after_the_command():
    from privface.resources import EXAMPLES_DIR

    result = run_cli("compare", str(EXAMPLES_DIR / "obama.jpg"), str(EXAMPLES_DIR / "biden.jpg"), "--tta", "none")
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith("DIFFERENT people: distance") and result.stderr == ""


def test_usage_error_exits_2_and_help_documents_the_statuses():
    assert run_cli("compare", str(ASTRONAUT)).returncode == 2
    assert run_cli("--no-such-option", "embed", str(ASTRONAUT)).returncode == 2
    help_text = run_cli("compare", "--help")
    assert help_text.returncode == 0 and "3 different people" in " ".join(help_text.stdout.split())


def test_no_face_names_the_file():
    result = run_cli("--tta", "none", "compare", str(ASTRONAUT), str(CAT))
    assert result.returncode == 1 and result.stderr.strip() == f"error: {CAT}: no face found in the image"


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    from client_encoder import cli

    def interrupted(self, image):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.FaceEncoder, "encode", interrupted)
    assert cli.main(["--tta", "none", "compare", str(ASTRONAUT), str(CAT)]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == "interrupted" and captured.out == ""


def test_artifacts_without_calibration_say_the_default_threshold_is_used(tmp_path):
    from client_encoder.models import ONNX_FILENAME, YUNET, default_encoder_path, verified_model

    (tmp_path / "encoder").mkdir()
    # The models (dlib's, and YuNet, which turns photos upright for every encoder), not the calibration.
    (tmp_path / "encoder" / ONNX_FILENAME).symlink_to(default_encoder_path())
    (tmp_path / "encoder" / YUNET.filename).symlink_to(verified_model(YUNET))
    env = {"PRIVFACE_ARTIFACTS": str(tmp_path)}
    result = run_cli("--encoder", "dlib", "--tta", "none", "compare", str(ASTRONAUT), str(ASTRONAUT), env=env)
    assert result.returncode == 0 and "threshold 0.6000" in result.stdout
    calibration = tmp_path / "encoder" / "calibration.json"
    assert result.stderr.splitlines() == [
        f"WARNING: no calibration at {calibration}: using dlib's default threshold 0.6 instead"
    ]
    quiet = run_cli("--quiet", "--encoder", "dlib", "--tta", "none", "compare", str(ASTRONAUT), str(ASTRONAUT), env=env)
    assert quiet.stderr == ""
    calibration.write_text('{"thresholds": {"jitter": 0.6}}')  # there, but not for this TTA mode
    broken = run_cli("--encoder", "dlib", "--tta", "none", "compare", str(ASTRONAUT), str(ASTRONAUT), env=env)
    assert broken.returncode == 1 and broken.stdout == ""
    expected = f"error: {calibration}: not a calibration file with a threshold for tta='none'"
    assert broken.stderr.splitlines() == [expected]


def test_bad_paths_get_one_accurate_line_each(tmp_path):
    from tests.test_images import _bad_paths

    expected = _bad_paths(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "client_encoder", "--tta", "none", "embed", *expected],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,  # where no file is named "-"
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: {message}" for message in expected.values()]
