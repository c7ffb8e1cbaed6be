import numpy as np
import pytest

import training.embeddings as embeddings
from privface.errors import NoFaceError
from tests.conftest import ASTRONAUT, CAT


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
