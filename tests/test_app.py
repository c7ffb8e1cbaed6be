"""The Streamlit app, driven with streamlit.testing (no browser)."""

from pathlib import Path

import pytest

from fhe_head.artifacts import ARTIFACTS_ROOT

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

pytestmark = pytest.mark.skipif(not (ARTIFACTS_ROOT / "accurate" / "meta.json").is_file(), reason="no shipped head")


def _run_example(index: int):
    app = AppTest.from_file(str(Path(__file__).parents[1] / "streamlit_app.py"), default_timeout=240)
    app.run()
    assert not app.exception
    app.selectbox[0].set_value(app.selectbox[0].options[index])
    app.checkbox[0].check()
    app.button[0].click()
    app.run()
    assert not app.exception, app.exception
    return app


def test_different_people_decrypt_to_different():
    app = _run_example(0)
    assert [w.value for w in app.warning] == ["Different people"]
    assert any("Server FHE time" in m.value for m in app.markdown)
    assert any("NOT private" in i.value for i in app.info)


def test_same_person_decrypts_to_same():
    app = _run_example(1)
    assert [s.value for s in app.success] == ["Same person"]
