import numpy as np
import pytest

import training.embeddings as embeddings
from client_encoder import FaceEncoder
from client_encoder.align import TTA_VIEWS, views_of
from privface_core.errors import NoFaceError
from tests.conftest import ASTRONAUT, CAT


@pytest.fixture(scope="module")
def encoder(dlib_encoder):
    """This module tests dlib's pipeline: `encoder` is dlib's here."""
    return dlib_encoder


def test_cache_serves_the_second_run_and_keys_on_the_pipeline(tmp_path, encoder, monkeypatch):
    cache = tmp_path / "cache.sqlite"
    first = embeddings.embed_images([ASTRONAUT], encoder, cache_path=cache, tta="flip", progress=False)
    assert first.views.shape == (1, 2, 128) and first.detector == ["hog"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("cache miss")

    monkeypatch.setattr(embeddings, "_embed_one", must_not_run)
    again = embeddings.embed_images([ASTRONAUT], encoder, cache_path=cache, tta="flip", progress=False)
    np.testing.assert_array_equal(again.views, first.views)
    with pytest.raises(AssertionError, match="cache miss"):  # another view set is another key
        embeddings.embed_images([ASTRONAUT], encoder, cache_path=cache, tta="none", progress=False)


def test_no_face_is_counted_never_silent(tmp_path, encoder):
    result = embeddings.embed_images([CAT], encoder, cache_path=tmp_path / "c.sqlite", tta="none", progress=False)
    assert result.detector == ["centre-box"] and result.no_face_images() == [str(CAT)]
    with pytest.raises(NoFaceError):
        embeddings.embed_images([CAT], encoder, cache_path=tmp_path / "c2.sqlite", no_face="error", progress=False)


def test_larger_view_sets_extend_the_shipped_one(tmp_path, encoder):
    # tta_views measures 34 / 50 views as prefixes of one pass: the first 18 must be the encoder's own views.
    views = views_of("jitter50")
    assert len(views) == 50 and views[:18] == TTA_VIEWS["jitter"] and views_of("jitter34") == views[:34]
    for name in ("dx", "dy", "degrees"):  # antithetic pairs: the mean view stays centred
        assert abs(np.mean([getattr(v, name) for v in views])) < 1e-12
    assert abs(np.mean([v.zoom for v in views]) - 1) < 1e-12
    for bad in ("jitter19", "jitterx", "jitter10", "blur"):
        with pytest.raises(ValueError, match="unknown TTA mode"):
            views_of(bad)
    wide = embeddings.embed_images(
        [ASTRONAUT], encoder, cache_path=tmp_path / "c.sqlite", tta="jitter34", progress=False
    )
    assert wide.views.shape == (1, 34, 128)
    np.testing.assert_allclose(
        wide.tta("jitter")[0], FaceEncoder(tta="jitter", encoder="dlib").encode(ASTRONAUT).embedding, atol=1e-5
    )
    assert not np.allclose(wide.tta("jitter34"), wide.tta("jitter"), atol=1e-4)
