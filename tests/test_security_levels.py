"""Security levels (the level element): the integer model per level, simulation, and a level chosen by
the key owner changing the decision through the real client/server roles, on a small toy head."""

import numpy as np
import pytest

from fhe_head.build import save_artifacts
from fhe_head.circuit import compile_head
from fhe_head.client import FHEClient
from fhe_head.head import LEVEL_NAMES, SEVERAL_PHOTOS, HeadParams, default_level
from fhe_head.server import FHEServer
from privface_core.errors import InputError, UnknownLevelError
from tests.toy_heads import toy_head
from training.head_fit import HeadConfig
from training.level_element import add_levels, raw_threshold
from training.security_levels import threshold_at_fmr

ENCODER_SHA = "e" * 64


def _toy(seed: int = 0, dims: int = 8) -> tuple[HeadParams, np.ndarray]:
    config = HeadConfig(dims, clip_sigma=3.0, levels=16, saturation=0.4, target_bits=5)
    return toy_head(seed, config, noise=0.7)


def _leveled(head: HeadParams) -> HeadParams:
    """Four levels, each stricter than the one before (raw thresholds below the balanced one)."""
    t = raw_threshold(head)
    return add_levels(head, dict(zip(LEVEL_NAMES, (t, t - 3, t - 6, t - 9), strict=True)))


@pytest.fixture(scope="module")
def toy():
    head, faces = _toy()
    return head, _leveled(head), faces


def test_each_level_is_a_raw_threshold_and_balanced_is_unchanged(toy):
    head, leveled, faces = toy
    rng = np.random.default_rng(3)
    i, j = rng.integers(0, len(faces), (2, 3000))
    raw = head.score(head.quantize(faces[i]), head.quantize(faces[j]))
    for name, t in zip(leveled.levels, leveled.level_thresholds, strict=True):
        decided = leveled.decide(leveled.quantize(faces[i]), leveled.quantize(faces[j], name))
        assert np.array_equal(decided, (raw < t).astype(int)), name
        # The level element is symmetric: a template may be either argument.
        swapped = leveled.decide(leveled.quantize(faces[j], name), leveled.quantize(faces[i]))
        assert np.array_equal(swapped, decided)
    balanced = leveled.decide(leveled.quantize(faces[i]), leveled.quantize(faces[j], "balanced"))
    assert np.array_equal(balanced, head.decide(head.quantize(faces[i]), head.quantize(faces[j])))
    assert leveled.vector_length == head.dims + 1


def test_level_thresholds_round_trip_and_unknown_levels_are_refused(toy, tmp_path):
    head, leveled, faces = toy
    leveled.save(tmp_path / "head.json")
    again = HeadParams.load(tmp_path / "head.json")
    assert again.levels == leveled.levels and again.level_thresholds == leveled.level_thresholds
    assert np.array_equal(again.tables, leveled.tables)
    with pytest.raises(UnknownLevelError, match="unknown security level '1e-5'.*balanced, 1e-2, 1e-3, 1e-4"):
        leveled.quantize(faces[0], "1e-5")
    with pytest.raises(UnknownLevelError, match="has no levels"):
        head.quantize(faces[0], "1e-3")


def test_a_forged_level_index_gets_the_strictest_offset(toy):
    _, leveled, faces = toy
    qa, qb = leveled.quantize(faces[0]), leveled.quantize(faces[1], "1e-4")
    forged = qb.copy()
    forged[-1] = leveled.q_max
    assert leveled.score(qa, forged) == leveled.score(qa, qb)


def test_offsets_that_widen_the_sum_round_off_one_more_bit():
    head, faces = _toy(1)
    wide = add_levels(head, {"balanced": raw_threshold(head), "strict": raw_threshold(head) - head.max_sum})
    assert wide.lsbs == head.lsbs + 1
    a, b = head.quantize(faces[:200]), head.quantize(faces[200:400])
    raw = head.score(a, b)
    for name, t in zip(wide.levels, wide.level_thresholds, strict=True):
        decided = wide.decide(wide.quantize(faces[:200]), wide.quantize(faces[200:400], name))
        assert np.array_equal(decided, (raw < t).astype(int))


def test_threshold_at_fmr_is_the_loosest_within_the_target():
    scores = np.arange(1000) // 2  # ties, as integer sums have
    for target in (1e-2, 1e-3, 3e-3):
        t = threshold_at_fmr(scores, target)
        assert np.mean(scores < t) <= target < np.mean(scores < t + 1)


def test_levels_integer_model_equals_simulation(toy):
    _, leveled, faces = toy
    circuit = compile_head(leveled)
    rng = np.random.default_rng(5)
    for k, (i, j) in enumerate(rng.integers(0, len(faces), (16, 2))):
        name = LEVEL_NAMES[k % 4]
        qa, qb = leveled.quantize(faces[i]), leveled.quantize(faces[j], name)
        assert int(circuit.simulate(qa, qb)) == int(leveled.decide(qa, qb))


def test_the_key_owner_picks_the_level_and_the_decision_follows(toy, tmp_path):
    head, leveled, faces = toy
    directory = tmp_path / "toy"
    save_artifacts(leveled, directory, ENCODER_SHA)
    client, server = FHEClient(directory, encoder_sha256=ENCODER_SHA), FHEServer(directory)
    client.generate_keys()
    keys = server.load_evaluation_keys(client.evaluation_keys())
    assert client.levels == LEVEL_NAMES
    # A pair just inside the 1e-2 threshold and outside the 1e-3 one.
    loose, strict = leveled.level_thresholds[1], leveled.level_thresholds[2]
    q = head.quantize(faces)
    rng = np.random.default_rng(7)
    pairs = rng.integers(0, len(faces), (5000, 2))
    raw = head.score(q[pairs[:, 0]], q[pairs[:, 1]])
    i, j = pairs[np.flatnonzero((raw >= strict) & (raw < loose))[0]]
    template = client.encrypt(faces[i])  # enrolled once, serves every level
    assert client.decrypt(server.run(template, client.encrypt(faces[j], "1e-2"), keys)) is True
    assert client.decrypt(server.run(template, client.encrypt(faces[j], "1e-3"), keys)) is False
    # Both probes are the same size: the ciphertext does not show the level by its length.
    assert len(client.encrypt(faces[j], "1e-2")) == len(client.encrypt(faces[j], "1e-4"))
    with pytest.raises(UnknownLevelError, match="unknown security level 'paranoid'"):
        client.encrypt(faces[j], "paranoid")


def test_verification_client_refuses_an_unknown_level(toy, tmp_path):
    from privface.client import VerificationClient

    _, leveled, _ = toy
    save_artifacts(leveled, tmp_path / "toy", ENCODER_SHA)
    with pytest.raises(UnknownLevelError, match="unknown security level '1e-9'"):
        VerificationClient("http://127.0.0.1:9", tmp_path / "toy", key_dir=None, level="1e-9")
    with VerificationClient("http://127.0.0.1:9", tmp_path / "toy", key_dir=None) as client:
        assert client.level == "1e-3"  # a secure default, not `balanced`
        # The level is the difference of what the two ciphertexts carry: a probe without one, or a
        # template with one, would silently compare at another level. Refused before anything is sent.
        face = np.asarray(leveled.mean, np.float32)
        template, probe = client.encrypt(face), client.encrypt(face, client.level)
        with pytest.raises(InputError, match="probe was encrypted without a security level"):
            client.send_pair(template, client.encrypt(face))
        with pytest.raises(InputError, match="template was encrypted with a security level"):
            client.send_pair(probe, probe)
    assert default_level(("balanced", "1e-2")) == "1e-2"  # a head that cannot hold 1e-3: its strictest
    assert default_level(()) is None


def test_cli_refuses_an_unknown_level(capsys):
    from privface.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--security", "1e-9", "compare", "a.jpg", "b.jpg"])
    assert exit_info.value.code == 2
    assert "invalid choice: '1e-9'" in capsys.readouterr().err


def _pair_with_raw_score(head: HeadParams, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Two synthetic embeddings whose raw integer score is exactly `target` (searched, seeded)."""
    rng = np.random.default_rng(11)
    for _ in range(20000):
        a = head.mean + 0.02 * rng.normal(size=head.mean.shape)
        b = a + rng.uniform(0.001, 0.2) * rng.normal(size=head.mean.shape)
        if int(head.raw_score(head.quantize(a), head.quantize(b))) == target:
            return a, b
    raise AssertionError(f"no pair with raw score {target}")


def test_level_selection_through_the_real_server(tmp_path):
    """The shipped fast head over HTTP: one enrolled template; a probe just inside one level's threshold and
    outside the next stricter one's is accepted at the first and refused at the second (the server sees
    only ciphertexts)."""
    from privface.client import VerificationClient
    from privface.local_server import LocalServer

    head = FHEClient("fast").head
    if len(head.levels) < 2:
        pytest.skip("the shipped fast head has no security levels (python -m training.security_levels)")
    loose, strict = head.levels[0], head.levels[1]
    t_strict = head.level_thresholds[1]
    assert t_strict < head.level_thresholds[0]
    a, b = _pair_with_raw_score(head, t_strict)  # inside the loose threshold, outside the strict one
    server = LocalServer(tmp_path / "server", points=("fast",)).start()
    try:
        with VerificationClient(server.url, "fast", tmp_path / "keys", level=loose) as client:
            client.enrol(a, "someone")
            result = client.verify(b, "someone")
            assert result.same is True and result.level == loose
        with VerificationClient(server.url, "fast", tmp_path / "keys", level=strict) as client:
            result = client.verify(b, "someone")  # the same template, enrolled once
            assert result.same is False and result.level == strict
            with pytest.raises(UnknownLevelError, match="this head offers balanced, 1e-2"):
                client.encrypt(b, "1e-9")  # a level no head offers: an error, never a silent default
    finally:
        server.stop()


def test_levels_are_described_from_the_measured_rates():
    from privface.levels import describe, look_alike_rates, measured_rates

    rates = measured_rates("accurate", "1e-3")
    if rates is None:
        pytest.skip("no artifacts/metrics/security_levels.json (python -m training.security_levels)")
    fmr, fnmr = rates
    sentence = describe("accurate", "1e-3")
    assert f"about 1 in {round(1 / fmr):,} strangers would be accepted" in sentence
    alike = look_alike_rates("accurate", "1e-3")
    if alike is not None:
        assert f"1 in {round(1 / alike[0]):,} among strangers who look alike" in sentence
        assert alike[1] >= alike[0] > fmr  # a group of similar people is where a level leaks first
    assert "no measured rates" in describe("accurate", "1e-9")


def test_a_several_photo_template_is_described_from_its_own_rates():
    from privface.levels import describe, several_photo_rates

    several = several_photo_rates("accurate", "1e-3", 3)
    if several is None:
        pytest.skip("no several-photo rates in artifacts/metrics/enrolment.json (python -m training.enrolment)")
    k, fmr, _ = several
    assert k == 3 and f"about 1 in {round(1 / fmr):,} strangers would be accepted" in describe("accurate", "1e-3", 3)
    assert describe("accurate", "1e-3", 4) == describe("accurate", "1e-3", 3)  # the largest K measured <= 4
    assert "templates of 2 photos" in describe("accurate", "1e-3", None)  # not enrolled here: the smallest K
    assert describe("accurate", "1e-3", 1) == describe("accurate", "1e-3")


def synthetic_gallery(seed: int = 0, crowd: int = 0, groups: int = 8):
    """A View-2-shaped gallery without LFW: 10 identity-disjoint folds of 8 people x 4 faces each; the
    first `crowd` people of each fold look alike (their centres lie close to one shared point)."""
    from pathlib import Path

    from training.lfw import Pair
    from training.security_levels import Gallery

    rng = np.random.default_rng(seed)
    shared = 3 * rng.normal(size=128) if crowd else None
    paths, vectors, pairs = [], [], []
    for fold in range(10):
        people = [f"p{fold}_{k}" for k in range(8)]
        faces = {}
        for k, person in enumerate(people):
            centre = shared + 0.5 * rng.normal(size=128) if k < crowd else rng.normal(size=128)
            faces[person] = [Path(f"/lfw/{person}/{person}_{n:04d}.jpg") for n in range(4)]
            paths += faces[person]
            vectors += list(centre + 0.4 * rng.normal(size=(4, 128)))
        for k, person in enumerate(people):
            pairs.append(Pair(faces[person][0], faces[person][1], True, fold))
            pairs.append(Pair(faces[person][2], faces[people[(k + 1) % 8]][3], False, fold))
    index = {p: i for i, p in enumerate(paths)}
    order = [index[p] for p in dict.fromkeys(p for pair in pairs for p in (pair.left, pair.right))]
    return Gallery(pairs, np.array(vectors)[order], groups=groups)


def test_look_alike_groups_keep_people_whole_and_expose_the_crowded_group():
    from training.security_levels import calibrate_model

    gallery = synthetic_gallery(crowd=4, groups=2)
    crowded = np.array([int(name.split("_")[1]) < 4 for name in gallery.person])
    assert set(gallery.group[crowded]) != set(gallery.group[~crowded])  # k-means found the crowd
    for name in set(gallery.person):
        assert len(set(gallery.group[gallery.person == name])) == 1  # a person is never split
    assert gallery.group_sizes()["people"] in ([40, 40], [41, 39], [39, 41])
    searches = {"1": (1, False), "4": (4, False), "3 look-alike": (3, True)}
    report = calibrate_model(gallery, None, "clear", searches=searches)
    crowd_group = int(np.bincount(gallery.group[crowded]).argmax())
    for name in ("1e-2",):
        level = report["levels"][name]
        by_group = level["fmr_per_look_alike_group"]
        assert by_group[crowd_group] > by_group[1 - crowd_group]
        assert level["fmr_look_alike"]["mean"] > level["fmr"]["mean"]
        # Each group's refusals add up to the overall FNMR (8 genuine pairs in every fold).
        genuine = report["genuine_pairs_per_look_alike_group"]
        assert sum(genuine) == 80
        overall = np.mean(level["fnmr"]["per_fold"])
        assert np.isclose(np.dot(level["fnmr_per_look_alike_group"], genuine) / 80, overall)
        # 1:N: one template is one impostor pair; more templates, more chances; look-alikes, more still.
        fpir = {k: v["mean"] for k, v in level["false_positive_identification_rate"].items()}
        assert abs(fpir["1"] - level["fmr"]["mean"]) < 0.02
        assert fpir["4"] > fpir["1"] and fpir["3 look-alike"] > fpir["4"]
    # The pooled look-alike rate of a fold is its accepted impostors among same-group pairs.
    assert report["counts_per_fold"]["look_alike_impostor_pairs"][0] == int(gallery.look_alike(0).sum())


def test_with_levels_sets_balanced_out_of_fold_and_holds_each_rate_on_its_own_people():
    from training.head_fit import fit_head
    from training.security_levels import FoldHeads, Scorer, with_levels

    gallery = synthetic_gallery()
    a, b, same, images = gallery.training_pairs(None)
    config = HeadConfig(dims=8, clip_sigma=3.0, target_bits=5)
    head = fit_head(config, images, a, b, same)
    leveled, calibration = with_levels(gallery, head, FoldHeads(gallery, config, "toy"), encoder="dlib")
    assert calibration["balanced_out_of_fold"]["threshold"] == calibration["raw_thresholds"]["balanced"]
    assert calibration["impostor_pairs"] == 10 * (32 * 31 // 2 - 8 * 6)  # cross-identity pairs within each fold
    offered = calibration["levels_offered"]
    assert offered[0] == "balanced" and list(leveled.levels) == offered
    assert leveled.offered == tuple(n for n in offered if not n.endswith(SEVERAL_PHOTOS))
    assert any(n.endswith(SEVERAL_PHOTOS) for n in offered)  # templates of 2 and 3 photos (4 per person)
    one_photo = [calibration["raw_thresholds"][n] for n in leveled.offered]
    assert one_photo[1:] == sorted(one_photo[1:], reverse=True)  # stricter level, lower threshold
    scorer = Scorer(gallery.vectors, head)
    impostor = np.concatenate([scorer(*gallery.impostors[f]) for f in range(10)])
    for name in leveled.offered[1:]:
        # Taken on the head's own people at the rate that holds the target out of fold.
        rate = calibration["in_sample_rate"][name]
        assert calibration["raw_thresholds"][name] == threshold_at_fmr(impostor, rate)
        assert np.mean(impostor < calibration["raw_thresholds"][name]) <= rate


def test_out_of_fold_rate_holds_the_target_on_people_the_heads_never_saw():
    from training.security_levels import in_sample_rate

    rng = np.random.default_rng(0)
    # Heads score their own people's impostors farther apart than strangers': the in-sample rate must drop.
    inner = []
    for _ in range(9):
        inside = np.sort(rng.integers(0, 40_000, 30_000))
        inner.append((inside, np.sort(rng.integers(0, 40_000, 3_000) - 30)))
    for target in (1e-2, 1e-3):
        q = in_sample_rate(inner, target)
        assert q < target

        def held_out(rate: float) -> float:
            hits = sum(np.searchsorted(o, threshold_at_fmr(i, rate)) for i, o in inner)
            return hits / sum(len(o) for _, o in inner)

        assert held_out(q) <= target < held_out(q * 10 ** (1 / 40) * 1.5)  # the loosest on the grid, near it
    # No optimism: the rate stays the target.
    same = [(np.sort(i), np.sort(i)) for i in (rng.integers(0, 40_000, 20_000) for _ in range(4))]
    assert 0.9e-2 < in_sample_rate(same, 1e-2) < 1.1e-2


def test_several_photo_thresholds_are_picked_from_the_template_photo_count(toy):
    head, _, faces = toy
    t = raw_threshold(head)
    names = (*LEVEL_NAMES, "1e-3" + SEVERAL_PHOTOS, "1e-4" + SEVERAL_PHOTOS)
    leveled = add_levels(head, dict(zip(names, (t, t - 3, t - 6, t - 9, t - 8, t - 11), strict=True)))
    assert leveled.offered == LEVEL_NAMES
    assert leveled.level_for("1e-3", 1) == "1e-3"
    assert leveled.level_for("1e-3", 3) == leveled.level_for("1e-3", None) == "1e-3" + SEVERAL_PHOTOS
    assert leveled.level_for("1e-2", 3) == "1e-2"  # no several-photo threshold for it
    raw = head.score(head.quantize(faces[:200]), head.quantize(faces[200:400]))
    decided = leveled.decide(leveled.quantize(faces[:200]), leveled.quantize(faces[200:400], "1e-4" + SEVERAL_PHOTOS))
    assert np.array_equal(decided, (raw < t - 11).astype(int))
    with pytest.raises(UnknownLevelError, match="offers balanced, 1e-2, 1e-3, 1e-4$"):
        leveled.quantize(faces[0], "1e-5")


def test_the_client_asks_for_the_several_photo_threshold_unless_it_enrolled_one_photo(toy, tmp_path):
    from privface.client import VerificationClient

    head, _, _ = toy
    t = raw_threshold(head)
    names = (*LEVEL_NAMES, "1e-3" + SEVERAL_PHOTOS)
    save_artifacts(
        add_levels(head, dict(zip(names, (t, t - 3, t - 6, t - 9, t - 8), strict=True))), tmp_path / "toy", ENCODER_SHA
    )
    with VerificationClient("http://127.0.0.1:9", tmp_path / "toy", key_dir=tmp_path / "keys") as client:
        several = "1e-3" + SEVERAL_PHOTOS
        assert client.level == "1e-3" and client.level_against("alice") == several  # not known: the stricter
        client._record_photos("alice", 1)
        client._record_photos("bob", 3)
        assert (client.level_against("alice"), client.level_against("bob")) == ("1e-3", several)
        assert client.level_against(None) == several  # identify meets every template
        client._record_photos("alice", None)  # deleted
        assert client.level_against("alice") == several
        assert oct(client._photos_file.stat().st_mode & 0o777) == "0o600"


def test_balanced_is_set_on_pairs_each_head_never_saw():
    """Each fold g the head was fitted on is scored by the head fitted without g too, and the best threshold
    over those scores pooled is taken (the middle of ties) -- not the head's own fit of its training pairs."""
    from training.folds import balanced_out_of_fold

    class Head:  # scores a pair by |a - b| plus a bias that depends on which folds the head left out
        def __init__(self, without: frozenset[int]) -> None:
            self.bias = 6 * (2 in without)  # a head that never saw fold 2 scores its pairs farther apart

        def quantize(self, x: np.ndarray) -> np.ndarray:
            return x

        def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.abs(a - b) + self.bias

    asked: list[frozenset[int]] = []

    def head_without(without: frozenset[int]) -> Head:
        asked.append(without)
        return Head(without)

    fold_of = np.repeat([0, 1, 2], 4)
    same = np.tile([True, True, False, False], 3)
    distance = np.array([1, 2, 7, 9, 2, 3, 8, 9, 0, 1, 2, 3])
    a, b = distance, np.zeros_like(distance)
    threshold = balanced_out_of_fold(head_without, a, b, same, fold_of, frozenset([0]))
    assert asked == [frozenset([0, 1]), frozenset([0, 2])]  # never fold 0 (held out), each other fold once
    # Out of fold, fold 1 scores 2, 3 | 8, 9 and fold 2 6, 7 | 8, 9: only t = 8 decides all 8 right. Fold 2
    # scored by a head fitted on it (0, 1 | 2, 3) would have made every t wrong on 2 pairs.
    assert threshold == 8
