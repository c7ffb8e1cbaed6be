"""The Streamlit app, driven with streamlit.testing (no browser); it starts its own server."""

from pathlib import Path

import pytest

from fhe_head.artifacts import ARTIFACTS_ROOT

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

pytestmark = pytest.mark.skipif(not (ARTIFACTS_ROOT / "accurate" / "meta.json").is_file(), reason="no shipped head")
APP = str(Path(__file__).parents[1] / "streamlit_app.py")


def _run_example(index: int, point: str = "accurate", clear: bool = True):
    app = AppTest.from_file(APP, default_timeout=300)
    app.run()
    assert not app.exception
    app.selectbox[0].set_value(app.selectbox[0].options[index])
    app.selectbox[1].set_value(point)
    if clear:
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


def test_same_person_decrypts_to_same_on_the_fast_point():
    app = _run_example(1, point="fast", clear=False)
    assert [s.value for s in app.success] == ["Same person"]
    assert not any("NOT private" in i.value for i in app.info)


def test_no_photos_chosen_is_a_friendly_warning():
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.radio[0].set_value("Your photos")
    app.button[0].click()
    app.run()
    assert not app.exception
    assert [w.value for w in app.warning] == ["Choose two photos first."]


def test_server_down_is_a_friendly_error(monkeypatch):
    import streamlit as st

    from privface.local_server import free_port

    monkeypatch.setenv("PRIVFACE_URL", f"http://127.0.0.1:{free_port()}")
    st.cache_resource.clear()  # forget the loopback server started by the other tests
    try:
        app = _run_example(0, point="fast")
        assert any("server is not available" in e.value for e in app.error)
    finally:
        monkeypatch.delenv("PRIVFACE_URL")
        st.cache_resource.clear()
