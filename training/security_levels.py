"""Security levels: calibrate each head's false-match rate on LFW people it never saw, and ship them.

    python -m training.security_levels --lfw-dir PATH              # calibrate, report, reship the heads
    python -m training.security_levels --lfw-dir PATH --no-ship    # report only (e.g. deep-funneled)
    python -m training.security_levels --lfw-dir PATH --fhe POINT  # real FHE near every level's threshold

Protocol (ISO/IEC 19795-1 terms; LFW View 2, image-restricted: only View 2's images and folds):
- Impostor pairs = every cross-identity pair of images within one fold (View 2's folds are
  identity-disjoint, checked here), ~300 k per fold. Genuine pairs = View 2's same-person pairs
  (300 per fold); FNMR over every same-identity pair of a fold's images is reported beside it.
- For each held-out fold f: the head is fitted on the other 9 folds' pairs (as train_head and eval_fhe
  do), each level's threshold is set on the other 9 folds' impostor pairs (the loosest threshold whose
  false-match rate there is <= the target), and FMR / FNMR are measured on fold f's people.
- Strangers who look alike: View 2's people are split into look-alike groups by k-means (k = 8, seeded)
  on each person's mean clear descriptor; each level's held-out FMR is also measured on the impostor
  pairs within one group (pooled), and per group (pooled over folds), with each group's FNMR on its
  people's genuine pairs. Thresholds are set as above, on
  all impostor pairs: this measures how far a level moves for a population of similar-looking people.
- 1:N identification: per held-out fold, 2,000 searches of a stranger's image against n enrolled people
  (one random image each; n = 16 and 64, and 16 all from one look-alike group); the false-positive
  identification rate (FPIR) is the share of searches in which the stranger matches any template.
- Scores: clear float = Euclidean distance of the 128-d descriptors; a head = its exact integer sum of
  lookups (what the circuit computes, so the integer model = FHE); accept iff score < threshold.
- The shipped heads are fitted on all 6000 pairs (as train_head ships them); their level thresholds
  are set on the impostor pairs of all 10 folds (training people), at rates found out of fold, and
  `balanced` is the best-accuracy threshold of heads like it on pairs of people they never saw
  (`training.folds.balanced_out_of_fold`), not the head's own threshold on its training pairs.

Levels travel as one extra vector element (fhe_head/head.py): one circuit for every level, which the
server cannot tell apart. Writes artifacts/metrics/security_levels[_<variant>].json and a DET plot.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from functools import cached_property
from pathlib import Path

import numpy as np

from client_encoder.encoder import DEFAULT_ENCODER, ENCODERS, template_of
from client_encoder.models import cache_dir
from fhe_head.artifacts import ARTIFACTS_ROOT as HEADS_ROOT
from fhe_head.artifacts import POINTS
from fhe_head.head import LEVEL_NAMES, SEVERAL_PHOTOS, HeadParams
from training.folds import balanced_out_of_fold
from training.head_fit import HeadConfig
from training.heads import config_from_dict, fit
from training.level_element import add_levels, raw_threshold
from training.lfw import Pair, open_lfw_for_cli, unique_images
from training.paths import METRICS
from training.protocol import best_threshold

# Level name -> target false-match rate; `balanced` is the best-accuracy threshold, set out of fold (index 0,
# what a template carries). Order = index k in the level element, loosest first.
LEVELS: dict[str, float | None] = {"balanced": None, "1e-2": 1e-2, "1e-3": 1e-3, "1e-4": 1e-4}
assert tuple(LEVELS) == LEVEL_NAMES
CHUNK = 200_000
LOOK_ALIKE_GROUPS = 8
# Open-set identification (1:N): templates searched per probe (the service allows 64 by default), searches
# per held-out fold; the look-alike searches take all n + 1 people from one group (folds hold ~50 per group).
SEARCHES = {"16": (16, False), "64": (64, False), "16 look-alike": (16, True)}
SEARCH_TRIALS = 2000
# Templates of several photos: each level's several-photo threshold is set on templates of these Ks, pooled
# (draws per person of each).
SEVERAL_PHOTOS_KS = (2, 3, 5)
TEMPLATE_DRAWS = 3


# ---- thresholds ---------------------------------------------------------------------------------
def threshold_at_fmr(impostor_scores: np.ndarray, target: float) -> float:
    """The loosest threshold t with mean(impostor < t) <= target (accept iff score < t)."""
    s = np.sort(np.asarray(impostor_scores))
    return float(s[int(np.floor(target * len(s)))])


# ---- pairs ------------------------------------------------------------------------------------
def look_alike_groups(vectors: np.ndarray, person: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A group index per image: k-means over each person's mean descriptor, so one person is in one group."""
    from sklearn.cluster import KMeans

    people, of_image = np.unique(person, return_inverse=True)
    means = np.zeros((len(people), vectors.shape[1]))
    np.add.at(means, of_image, vectors)
    means /= np.bincount(of_image)[:, None]
    k = min(k, len(people))
    return KMeans(k, n_init=10, random_state=seed).fit_predict(means)[of_image]


class Gallery:
    """View 2's images, their people and folds, and every pair the protocol uses (as index arrays)."""

    def __init__(
        self, view2: list[Pair], vectors: np.ndarray, groups: int = LOOK_ALIKE_GROUPS, group_vectors=None
    ) -> None:
        self.paths = unique_images(view2)
        self.vectors = vectors
        # Look-alike groups are drawn on these vectors (default: the scored ones); comparing encoders
        # draws them once, on one embedding, so each encoder meets the same look-alikes.
        self.group_vectors = vectors if group_vectors is None else group_vectors
        index = {p: i for i, p in enumerate(self.paths)}
        self.person = np.array([p.parent.name for p in self.paths])
        fold_sets: list[set[int]] = [set() for _ in self.paths]
        for p in view2:
            fold_sets[index[p.left]].add(p.fold)
            fold_sets[index[p.right]].add(p.fold)
        people_folds: dict[str, set[int]] = {}
        for i, folds in enumerate(fold_sets):
            people_folds.setdefault(self.person[i], set()).update(folds)
        self.people_in_several_folds = sorted(n for n, f in people_folds.items() if len(f) > 1)
        if self.people_in_several_folds:
            raise ValueError(f"View 2 folds share people: {self.people_in_several_folds[:5]}")
        self.fold = np.array([next(iter(f)) for f in fold_sets])
        self.pairs = view2
        self.pair_left = np.array([index[p.left] for p in view2])
        self.pair_right = np.array([index[p.right] for p in view2])
        self.pair_same = np.array([p.same for p in view2])
        self.pair_fold = np.array([p.fold for p in view2])
        self.n_folds = int(self.pair_fold.max()) + 1
        self.impostors, self.same_identity = [], []
        for f in range(self.n_folds):
            members = np.flatnonzero(self.fold == f)
            i, j = np.triu_indices(len(members), k=1)
            i, j = members[i], members[j]
            same = self.person[i] == self.person[j]
            self.impostors.append((i[~same].astype(np.int32), j[~same].astype(np.int32)))
            self.same_identity.append((i[same].astype(np.int32), j[same].astype(np.int32)))
        self.groups_wanted = groups
        self._searches: dict[tuple[int, int, bool], tuple[np.ndarray, np.ndarray]] = {}

    @cached_property
    def group(self) -> np.ndarray:
        """Each image's look-alike group (computed on first use: only the look-alike figures need it)."""
        return look_alike_groups(self.group_vectors, self.person, self.groups_wanted)

    @property
    def n_groups(self) -> int:
        return int(self.group.max()) + 1

    def look_alike(self, f: int) -> np.ndarray:
        """Which of fold f's impostor pairs join two people of one look-alike group (a mask)."""
        i, j = self.impostors[f]
        return self.group[i] == self.group[j]

    def open_set_searches(self, f: int, n: int, look_alike: bool) -> tuple[np.ndarray, np.ndarray]:
        """SEARCH_TRIALS 1:N searches among fold f's people, as image indices: (strangers (trials,), templates
        (trials, n)). Each search enrols n people (one random image each) and probes with an image of another
        person; with `look_alike`, all n + 1 come from one look-alike group. Seeded by (f, n, look_alike),
        so every scorer sees the same searches (drawn once per gallery)."""
        if (f, n, look_alike) not in self._searches:
            self._searches[f, n, look_alike] = self._draw_searches(f, n, look_alike)
        return self._searches[f, n, look_alike]

    def _draw_searches(self, f: int, n: int, look_alike: bool) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([f, n, int(look_alike)])
        members = np.flatnonzero(self.fold == f)
        people, first = np.unique(self.person[members], return_index=True)
        images_of = [members[self.person[members] == p] for p in people]
        group = self.group[members[first]]
        pools = [np.flatnonzero(group == g) for g in range(self.n_groups)] if look_alike else [np.arange(len(people))]
        pools = [pool for pool in pools if len(pool) > n]
        if not pools:
            raise ValueError(f"fold {f} has no {'look-alike group' if look_alike else 'people'} of {n + 1} people")
        strangers = np.zeros(SEARCH_TRIALS, np.int32)
        templates = np.zeros((SEARCH_TRIALS, n), np.int32)
        for trial in range(SEARCH_TRIALS):
            chosen = rng.choice(pools[rng.integers(len(pools))], n + 1, replace=False)
            strangers[trial] = rng.choice(images_of[chosen[0]])
            templates[trial] = [rng.choice(images_of[k]) for k in chosen[1:]]
        return strangers, templates

    def group_sizes(self) -> dict:
        people = {g: len(set(self.person[self.group == g])) for g in range(self.n_groups)}
        images = np.bincount(self.group, minlength=self.n_groups)
        return {"people": [people[g] for g in range(self.n_groups)], "images": images.tolist()}

    def genuine(self, f: int) -> tuple[np.ndarray, np.ndarray]:
        keep = self.pair_same & (self.pair_fold == f)
        return self.pair_left[keep], self.pair_right[keep]

    def training_pairs(self, f: int | None | frozenset[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(a, b, same, images) of View 2's pairs outside fold f, or outside a set of folds (all of them for
        f=None or an empty set), as train_head."""
        without = frozenset() if f is None else frozenset([f]) if isinstance(f, int) else f
        pairs = [p for p in self.pairs if p.fold not in without]
        index = {p: i for i, p in enumerate(self.paths)}
        a = self.vectors[[index[p.left] for p in pairs]]
        b = self.vectors[[index[p.right] for p in pairs]]
        images = self.vectors[[index[p] for p in unique_images(pairs)]]
        return a, b, np.array([p.same for p in pairs]), images

    def balanced_out_of_fold(self, heads: FoldHeads, without: frozenset[int] = frozenset()) -> int:
        """The `balanced` threshold of the head fitted without `without`, set out of fold on View 2's pairs."""
        a, b = self.vectors[self.pair_left], self.vectors[self.pair_right]
        return balanced_out_of_fold(heads, a, b, self.pair_same, self.pair_fold, without)


class Templates:
    """Per fold, K-photo templates of its people (rows appended after the gallery's images) and their genuine
    and impostor attempts. A template = `client_encoder.template_of` over K of a person's photos (drawn
    at random, seeded, TEMPLATE_DRAWS draws per person); genuine attempts = it against each of the person's other
    photos; impostor attempts = it against every photo of every other person of the fold. A person enters
    at K if they have at least K + 1 photos. With several Ks (a tuple), the templates of each are pooled."""

    def __init__(self, gallery: Gallery, encoder: str, k: int | tuple[int, ...], seed: int = 0) -> None:
        ks = (k,) if isinstance(k, int) else k
        rng = np.random.default_rng([seed, *ks])
        vectors, rows = [gallery.vectors], len(gallery.vectors)
        self.genuine: list[tuple[np.ndarray, np.ndarray]] = []
        self.impostor: list[tuple[np.ndarray, np.ndarray]] = []
        self.people = []
        for f in range(gallery.n_folds):
            in_fold = np.flatnonzero(gallery.fold == f)
            gen_i, gen_j, imp_i, imp_j, people = [], [], [], [], 0
            for person, k in itertools.product(np.unique(gallery.person[in_fold]), ks):
                own = in_fold[gallery.person[in_fold] == person]
                if len(own) < k + 1:
                    continue
                people += 1
                others = in_fold[gallery.person[in_fold] != person]
                for _ in range(TEMPLATE_DRAWS if len(own) > k + 1 else 1):
                    chosen = rng.permutation(own)
                    enrolled, probes = chosen[:k], chosen[k:]
                    vectors.append(template_of(gallery.vectors[enrolled], encoder)[None])
                    gen_i += [rows] * len(probes)
                    gen_j += list(probes)
                    imp_i += [rows] * len(others)
                    imp_j += list(others)
                    rows += 1
            self.genuine.append((np.array(gen_i, np.int64), np.array(gen_j, np.int64)))
            self.impostor.append((np.array(imp_i, np.int64), np.array(imp_j, np.int64)))
            self.people.append(people)
        self.vectors = np.concatenate(vectors)


# ---- scorers ----------------------------------------------------------------------------------
class Scorer:
    """Score of an image pair: clear float distance, or a head's exact integer sum (no level element)."""

    def __init__(self, vectors: np.ndarray, head: HeadParams | None = None) -> None:
        self.head = head
        if head is None:
            self.points = vectors.astype(np.float32)
        else:
            q = head.quantize(vectors)[:, : head.dims]
            self.points = q.astype(np.int16)
            self.rows = np.arange(head.dims)
            self.tables = head.tables[: head.dims].astype(np.int32)

    def __call__(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(i), CHUNK):
            a, b = self.points[i[start : start + CHUNK]], self.points[j[start : start + CHUNK]]
            if self.head is None:
                out.append(np.linalg.norm(a - b, axis=1))
            else:
                delta = a.astype(np.int32) - b + self.head.offset
                out.append(self.tables[self.rows, delta].sum(axis=1))
        return np.concatenate(out) if out else np.zeros(0)


# ---- out-of-fold calibration ---------------------------------------------------------------------
class FoldHeads:
    """One head configuration fitted on View 2's pairs without a given set of folds (cached per set).

    A head scores the impostors of the people it was fitted on as farther apart than those of people it
    never saw (its PCA fits them), so a level set on its own training people lets in more strangers than
    its target. Out-of-fold calibration corrects for that with heads fitted without one more fold."""

    def __init__(self, gallery: Gallery, config, label: str) -> None:
        self.gallery, self.config, self.label = gallery, config, label
        self._heads: dict[frozenset[int], HeadParams] = {}

    def __call__(self, without: frozenset[int]) -> HeadParams:
        if without not in self._heads:
            a, b, same, images = self.gallery.training_pairs(without)
            name = f"{self.label}-without{''.join(map(str, sorted(without)))}"
            self._heads[without] = fit(self.config, images, a, b, same, name=name)
        return self._heads[without]


class ImpostorScores:
    """Impostor attempts of every fold (index pairs into `vectors`: image pairs, or K-photo templates
    against photos) scored by the heads of `heads`, cached per head."""

    def __init__(self, heads: FoldHeads, vectors: np.ndarray, impostors: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.heads, self.vectors, self.impostors = heads, vectors, impostors
        self._scores: dict[frozenset[int], list[np.ndarray]] = {}

    def __call__(self, without: frozenset[int], head: HeadParams | None = None) -> list[np.ndarray]:
        """Per fold, the scores given by the head fitted without `without` (or `head`, which is that head)."""
        if without not in self._scores:
            head = head or self.heads(without)
            scorer = Scorer(self.vectors, head)
            kind = np.int16 if head.max_sum < 2**15 else np.int32  # memory: ~50 heads
            self._scores[without] = [scorer(i, j).astype(kind) for i, j in self.impostors]
        return self._scores[without]

    def thresholds(self, without: frozenset[int], balanced: float, head: HeadParams | None = None) -> dict:
        """Each level's threshold for the head fitted without `without`, set out of fold: for each fold g it
        was fitted on, the head fitted without g too scores g's impostors (people it never saw) and the
        others (its own); the rate q on its own people whose thresholds let in the target rate of unseen
        people, pooled over g, is then taken on the head's own training people's impostors.
        Returns {"thresholds": {level: t}, "in_sample_rate": {level: q}}."""
        train = [g for g in range(len(self.impostors)) if g not in without]
        own = np.concatenate([self(without, head)[g] for g in train])
        inner = []
        for g in train:
            scores = self(without | {g})
            inside = np.sort(np.concatenate([scores[h] for h in train if h != g]))
            inner.append((inside, np.sort(scores[g])))
        thresholds, rates = {}, {}
        for name, target in LEVELS.items():
            if target is None:
                thresholds[name] = balanced
                continue
            rates[name] = in_sample_rate(inner, target)
            thresholds[name] = threshold_at_fmr(own, rates[name])
        return {"thresholds": thresholds, "in_sample_rate": rates}


def in_sample_rate(inner: list[tuple[np.ndarray, np.ndarray]], target: float) -> float:
    """The largest rate q (on a log grid from target/100 to 10 x target) such that thresholds letting in q of
    each inner head's own impostors (`inside`, sorted) let in at most `target` of its held-out impostors
    (`outside`, sorted), pooled over the inner heads."""
    total = sum(len(outside) for _, outside in inner)
    best = target / 100
    for q in target * np.logspace(-2, 1, 121):
        matches = sum(
            np.searchsorted(outside, inside[min(int(np.floor(q * len(inside))), len(inside) - 1)])
            for inside, outside in inner
        )
        if matches <= target * total:
            best = float(q)
    return best


def level_thresholds(impostor: np.ndarray, balanced: float) -> dict[str, float]:
    """Per level: the balanced threshold given, or the loosest one holding the target FMR on `impostor`."""
    return {name: balanced if target is None else threshold_at_fmr(impostor, target) for name, target in LEVELS.items()}


def fold_summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)), "per_fold": values}


class GroupTally:
    """Per look-alike group, pooled over the held-out folds: the impostor pairs within the group and how many
    each level accepts; the group's genuine pairs and how many each level refuses."""

    def __init__(self, gallery: Gallery) -> None:
        self.gallery = gallery
        k = gallery.n_groups
        self.pairs, self.genuine = np.zeros(k), np.zeros(k)
        self.matches = {n: np.zeros(k) for n in LEVELS}
        self.refused = {n: np.zeros(k) for n in LEVELS}

    def add(self, f: int, impostor: np.ndarray, genuine: np.ndarray, thresholds: dict) -> dict[str, float]:
        """Count held-out fold f (its impostor and genuine scores); each level's FMR among its look-alike pairs."""
        gallery, k = self.gallery, self.gallery.n_groups
        look_alike = gallery.look_alike(f)
        pair_group = gallery.group[gallery.impostors[f][0][look_alike]]
        genuine_group = gallery.group[gallery.genuine(f)[0]]
        self.pairs += np.bincount(pair_group, minlength=k)
        self.genuine += np.bincount(genuine_group, minlength=k)
        fmr = {}
        for name, t in thresholds.items():
            accepted = impostor[look_alike] < t
            self.matches[name] += np.bincount(pair_group, weights=accepted, minlength=k)
            self.refused[name] += np.bincount(genuine_group, weights=genuine >= t, minlength=k)
            fmr[name] = float(np.mean(accepted))
        return fmr

    def rates(self, name: str) -> dict:
        return {
            "fmr_per_look_alike_group": (self.matches[name] / self.pairs).tolist(),
            "fnmr_per_look_alike_group": (self.refused[name] / np.maximum(self.genuine, 1)).tolist(),
        }


def identification_fpir(
    gallery: Gallery, scorer: Scorer, f: int, thresholds: dict, searches: dict[str, tuple[int, bool]]
) -> dict[str, dict[str, float]]:
    """Per search kind and level: the share of fold f's 1:N searches in which the stranger matches a template."""
    rates = {}
    for search, (n_templates, look_alike) in searches.items():
        strangers, templates = gallery.open_set_searches(f, n_templates, look_alike)
        closest = scorer(np.repeat(strangers, n_templates), templates.ravel()).reshape(templates.shape).min(axis=1)
        rates[search] = {name: float(np.mean(closest < t)) for name, t in thresholds.items()}
    return rates


def _det_grid(impostor: np.ndarray, integer: bool) -> np.ndarray:
    """Thresholds for the DET curve, up to the first fold's 20% impostor quantile (every integer for a head)."""
    top = float(np.quantile(impostor, 0.2))
    return np.arange(0, top + 1) if integer else np.linspace(0, top, 400)


def _level_summary(name: str, v: dict, fpir: dict, groups: GroupTally, impostor_pairs: list[int]) -> dict:
    """One level's report from its per-fold figures `v` and 1:N rates `fpir`."""
    return {
        "target_fmr": LEVELS[name],
        "threshold_per_fold": v["threshold"],
        "fmr": fold_summary(v["fmr"]),
        "fnmr": fold_summary(v["fnmr"]),
        "tar_mean": 1 - float(np.mean(v["fnmr"])),
        "fnmr_all_same_identity_pairs": fold_summary(v["fnmr_all"]),
        "false_matches_total": int(round(sum(r * n for r, n in zip(v["fmr"], impostor_pairs, strict=True)))),
        "fmr_look_alike": fold_summary(v["fmr_look_alike"]),
        # Held-out FMR had the threshold been set on the head's own training people (the former calibration).
        "fmr_if_set_on_training_people": fold_summary(v["in_sample"]),
        **groups.rates(name),
        "false_positive_identification_rate": {search: fold_summary(r) for search, r in fpir.items()},
    }


def _add_fold(
    per_level: dict, thresholds: dict, in_sample: dict, impostor, genuine, same_all, look_alike_fmr: dict
) -> None:
    """One held-out fold's figures per level, appended to `per_level`."""
    for name, t in thresholds.items():
        per_level[name]["threshold"].append(float(t))
        per_level[name]["fmr"].append(float(np.mean(impostor < t)))
        per_level[name]["fmr_look_alike"].append(look_alike_fmr[name])
        per_level[name]["fnmr"].append(float(np.mean(genuine >= t)))
        per_level[name]["fnmr_all"].append(float(np.mean(same_all >= t)))
        per_level[name]["in_sample"].append(float(np.mean(impostor < in_sample[name])))


def calibrate_model(
    gallery: Gallery,
    config: HeadConfig | None,
    label: str,
    recorded: dict | None = None,
    searches: dict[str, tuple[int, bool]] = SEARCHES,
    heads: FoldHeads | None = None,
) -> dict:
    """Fold-wise thresholds (set on 9 folds' people) and held-out FMR / FNMR for clear float (config
    None) or a head configuration (refitted per fold; its levels set out of fold, `ImpostorScores.thresholds`,
    and the rates the levels would have if set on the head's own training people reported beside them).
    Also DET points, averaged over the folds.

    For a head, each fold's head also gets its level element, checked on the held-out pairs (`LevelChecks`)."""
    per_level: dict[str, dict[str, list]] = {
        n: {"threshold": [], "fmr": [], "fnmr": [], "fnmr_all": [], "fmr_look_alike": [], "in_sample": []}
        for n in LEVELS
    }
    if config is not None:
        heads = heads or FoldHeads(gallery, config, label)
        impostor_scores = ImpostorScores(heads, gallery.vectors, gallery.impostors)
        level_checks = LevelChecks(gallery, recorded)
    fpir: dict[str, dict[str, list]] = {n: {s: [] for s in searches} for n in LEVELS}
    counts = {"impostor_pairs": [], "look_alike_impostor_pairs": [], "genuine_pairs": [], "same_identity_pairs": []}
    groups = GroupTally(gallery)
    det_grid, det_fmr, det_fnmr = None, [], []
    clear_impostors = None
    for f in range(gallery.n_folds):
        if config is None:
            a, b, same, _ = gallery.training_pairs(f)
            scorer = Scorer(gallery.vectors)
            balanced = best_threshold(np.linalg.norm(a - b, axis=1), same)
            # The clear score does not depend on the fold: score every fold's impostors once.
            clear_impostors = clear_impostors or [scorer(*gallery.impostors[g]) for g in range(gallery.n_folds)]
            by_fold = clear_impostors
        else:
            head = heads(frozenset([f]))
            scorer = Scorer(gallery.vectors, head)
            balanced = gallery.balanced_out_of_fold(heads, frozenset([f]))
            by_fold = impostor_scores(frozenset([f]))
        in_sample = level_thresholds(np.concatenate([by_fold[g] for g in range(gallery.n_folds) if g != f]), balanced)
        if config is None:
            thresholds = in_sample  # the clear score is fitted on nobody: the other folds are out of sample
        else:
            thresholds = impostor_scores.thresholds(frozenset([f]), balanced)["thresholds"]
            level_checks.add(head, thresholds, f)
        impostor = by_fold[f]
        genuine = scorer(*gallery.genuine(f))
        same_all = scorer(*gallery.same_identity[f])
        look_alike_fmr = groups.add(f, impostor, genuine, thresholds)
        counts["impostor_pairs"].append(len(impostor))
        counts["look_alike_impostor_pairs"].append(int(gallery.look_alike(f).sum()))
        counts["genuine_pairs"].append(len(genuine))
        counts["same_identity_pairs"].append(len(same_all))
        _add_fold(per_level, thresholds, in_sample, impostor, genuine, same_all, look_alike_fmr)
        for search, rates in identification_fpir(gallery, scorer, f, thresholds, searches).items():
            for name, rate in rates.items():
                fpir[name][search].append(rate)
        if det_grid is None:
            det_grid = _det_grid(impostor, integer=config is not None)
        det_fmr.append([float(np.mean(impostor < t)) for t in det_grid])
        det_fnmr.append([float(np.mean(genuine >= t)) for t in det_grid])
    levels = {
        name: _level_summary(name, per_level[name], fpir[name], groups, counts["impostor_pairs"]) for name in LEVELS
    }
    return {
        "model": label,
        "point": label if config is not None else None,
        "config": config.to_dict() if config else None,
        "score": "Euclidean distance, 128-d float" if config is None else "exact integer sum of the head's lookups",
        "counts_per_fold": counts,
        "genuine_pairs_per_look_alike_group": groups.genuine.astype(int).tolist(),
        "impostor_pairs_total": int(sum(counts["impostor_pairs"])),
        "levels": levels,
        **(level_checks.report() if config is not None else {}),
        "det": {
            "thresholds": [float(t) for t in det_grid],
            "fmr_mean_over_folds": np.mean(det_fmr, axis=0).tolist(),
            "fnmr_mean_over_folds": np.mean(det_fnmr, axis=0).tolist(),
        },
    }


class LevelChecks:
    """Each fold's head with its level element, checked on the fold's held-out View 2 pairs: every level
    decides as `raw sum < that level's threshold`, and `balanced` as `recorded` (eval_fhe's real-FHE decisions
    by pair index); how many decisions differ from the head's own threshold, set on its training pairs; and
    LFW's 10-fold accuracy of the balanced level beside that of the head's own threshold."""

    def __init__(self, gallery: Gallery, recorded: dict | None) -> None:
        self.gallery, self.recorded = gallery, recorded
        self.checks = {"pairs": 0, "level_vs_raw_mismatches": 0, "balanced_vs_own_threshold_changed": 0}
        if recorded:
            self.checks |= dict.fromkeys(
                ("recorded_pairs_compared", "balanced_vs_recorded_clear", "balanced_vs_recorded_fhe"), 0
            )
        self.accuracy: dict[str, list[float]] = {"balanced_out_of_fold": [], "own_threshold": []}

    def add(self, head: HeadParams, thresholds: dict, f: int) -> None:
        gallery, checks, recorded = self.gallery, self.checks, self.recorded
        leveled = add_levels(head, {n: int(t) for n, t in thresholds.items()})
        test = np.flatnonzero(gallery.pair_fold == f)
        a, b = gallery.vectors[gallery.pair_left[test]], gallery.vectors[gallery.pair_right[test]]
        qa, qb = head.quantize(a), head.quantize(b)
        raw = head.score(qa, qb)
        today = head.decide(qa, qb)
        checks["pairs"] += len(test)
        for name, t in thresholds.items():
            decided = leveled.decide(leveled.quantize(a), leveled.quantize(b, name))
            checks["level_vs_raw_mismatches"] += int(np.sum(decided != (raw < t)))
            if name == "balanced":
                same = gallery.pair_same[test]
                self.accuracy["balanced_out_of_fold"].append(float(np.mean(decided == same)))
                self.accuracy["own_threshold"].append(float(np.mean(today == same)))
                checks["balanced_vs_own_threshold_changed"] += int(np.sum(decided != today))
                if recorded:
                    for i, d in zip(test, decided, strict=True):
                        if int(i) in recorded:
                            checks["recorded_pairs_compared"] += 1
                            checks["balanced_vs_recorded_clear"] += int(d != recorded[int(i)]["clear"])
                            checks["balanced_vs_recorded_fhe"] += int(d != recorded[int(i)]["fhe"])

    def report(self) -> dict:
        return {
            "level_element_checks": self.checks,
            "lfw_balanced_accuracy": {
                kind: {"mean": float(np.mean(v)), "per_fold": v} for kind, v in self.accuracy.items()
            },
        }


# ---- the shipped heads ---------------------------------------------------------------------------
def shipped_config(point: str):
    return config_from_dict(json.loads((HEADS_ROOT / point / "meta.json").read_text())["config"])


def leveled_shipped_head(
    gallery: Gallery, point: str, heads: FoldHeads | None = None, encoder: str | None = None
) -> tuple[HeadParams, dict]:
    """The shipped point refitted exactly as train_head ships it, plus levels set out of fold."""
    config = shipped_config(point)
    heads = heads or FoldHeads(gallery, config, point)
    a, b, same, images = gallery.training_pairs(None)
    head = fit(config, images, a, b, same, name=f"d{config.dims}")
    shipped = HeadParams.load(HEADS_ROOT / point / "head.json")
    base = shipped.tables[: shipped.dims]
    if not (np.array_equal(base, head.tables) and np.allclose(shipped.scale, head.scale)):
        raise ValueError(f"refitting {point} does not reproduce the shipped head (other embeddings?)")
    if not shipped.levels and shipped.threshold != head.threshold:
        raise ValueError(f"refitted {point} threshold {head.threshold} != shipped {shipped.threshold}")
    return with_levels(gallery, head, heads, encoder)


def with_levels(
    gallery: Gallery, head: HeadParams, heads: FoldHeads, encoder: str | None = None
) -> tuple[HeadParams, dict]:
    """`head` (fitted on all of View 2 with `heads`' configuration) plus its level element, each level set
    out of fold (`ImpostorScores.thresholds`: heads fitted without one fold score it) and taken on the
    impostors of all 10 folds. With `encoder`, each strict level also gets its several-photo threshold,
    set the same way on templates of SEVERAL_PHOTOS_KS photos (that encoder's `template_of`)."""
    scorer = Scorer(gallery.vectors, head)
    impostor_scores = ImpostorScores(heads, gallery.vectors, gallery.impostors)
    impostor = np.concatenate(impostor_scores(frozenset(), head))
    balanced = gallery.balanced_out_of_fold(heads)
    out_of_fold = impostor_scores.thresholds(frozenset(), balanced, head)
    thresholds = dict(out_of_fold["thresholds"])
    several = {}
    if encoder is not None:
        templates = Templates(gallery, encoder, SEVERAL_PHOTOS_KS)
        template_scores = ImpostorScores(heads, templates.vectors, templates.impostor)
        attempts = np.concatenate(template_scores(frozenset(), head))
        several_out = template_scores.thresholds(frozenset(), balanced, head)
        for name, target in LEVELS.items():
            if target is not None:
                thresholds[name + SEVERAL_PHOTOS] = several_out["thresholds"][name]
        several = {
            "several_photos": {
                "ks": list(SEVERAL_PHOTOS_KS),
                "templates": int(len(templates.vectors) - len(gallery.vectors)),
                "impostor_attempts": int(len(attempts)),
                "in_sample_rate": several_out["in_sample_rate"],
                "training_fmr": {
                    n: float(np.mean(attempts < t)) for n, t in thresholds.items() if n.endswith(SEVERAL_PHOTOS)
                },
            }
        }
    # A level whose threshold is 0 would refuse everyone (the integer score is too coarse to hold that
    # rate): the head does not offer it, and asking for it is an error, not a silent substitute.
    offered = {n: int(t) for n, t in thresholds.items() if t > 0}
    leveled = add_levels(head, offered)
    genuine = scorer(gallery.pair_left[gallery.pair_same], gallery.pair_right[gallery.pair_same])
    a, b = gallery.vectors[gallery.pair_left], gallery.vectors[gallery.pair_right]
    today = head.decide(head.quantize(a), head.quantize(b))
    decided = leveled.decide(leveled.quantize(a), leveled.quantize(b, "balanced"))
    calibration = {
        "balanced_out_of_fold": {
            "threshold": int(thresholds["balanced"]),
            "own_threshold": raw_threshold(head),
            "view2_pairs": len(a),
            "decisions_changed": int(np.sum(today != decided)),
        },
        "calibrated_on": f"impostor pairs of all {gallery.n_folds} View 2 folds (the head's own training people), "
        "at the rate that lets in each level's target of people a head never saw (heads fitted without one fold)",
        "in_sample_rate": out_of_fold["in_sample_rate"],
        "impostor_pairs": int(len(impostor)),
        "raw_thresholds": {n: int(t) for n, t in thresholds.items()},
        "levels_offered": list(offered),
        "training_fmr": {n: float(np.mean(impostor < t)) for n, t in thresholds.items() if n in LEVELS},
        "training_fnmr_view2_same": {n: float(np.mean(genuine >= t)) for n, t in thresholds.items()},
        **several,
    }
    return leveled, calibration


def ship(gallery: Gallery, point: str, encoder_sha256: str, encoder: str, heads: FoldHeads | None = None) -> dict:
    """Recompile the shipped point with its level element (artifacts/fhe_head/<point>/)."""
    from fhe_head.build import save_artifacts

    leveled, calibration = leveled_shipped_head(gallery, point, heads, encoder)
    config = shipped_config(point)
    meta = save_artifacts(
        leveled,
        HEADS_ROOT / point,
        encoder_sha256,
        encoder=encoder,
        extra_meta={
            "config": config.to_dict(),
            "trained_on": "LFW original View 2, all 6000 pairs",
            "security_levels": calibration,
        },
    )
    print(f"  shipped {point} with levels {leveled.level_thresholds}: {meta['programmable_bootstrap_count']} PBS")
    return {**calibration, "circuit_threshold": leveled.threshold, "lsbs": leveled.lsbs, "max_sum": leveled.max_sum}


def plot_det(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    markers = {"1e-2": "o", "1e-3": "s", "1e-4": "^", "balanced": "D"}
    for key, model in report["models"].items():
        det = model["det"]
        fmr, fnmr = np.array(det["fmr_mean_over_folds"]), np.array(det["fnmr_mean_over_folds"])
        keep = (fmr > 0) & (fnmr > 0)
        style = "-" if model["config"] is None else "-."
        (line,) = ax.plot(fmr[keep], fnmr[keep], style, label=key)
        for name, level in model["levels"].items():
            ax.plot(
                max(level["fmr"]["mean"], 1e-6),
                max(level["fnmr"]["mean"], 1e-4),
                markers[name],
                color=line.get_color(),
                markersize=6,
                markerfacecolor="none",
            )
    for name, m in markers.items():
        ax.plot([], [], m, color="gray", markerfacecolor="none", label=f"level {name}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-5, 1e-1)
    ax.set_ylim(1e-3, 1)
    ax.set_xlabel("false-match rate (held-out fold's impostor pairs)")
    ax.set_ylabel("false non-match rate (View 2 same pairs)")
    ax.set_title(f"DET, LFW {report['variant']}: {report['folds']} identity-disjoint folds, mean")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _recorded(point: str, encoder_sha256: str, variant: str) -> dict:
    """eval_fhe's per-pair real-FHE decisions of this point's configuration on this encoder (per-fold heads),
    as far as committed."""
    from training.eval_fhe import RESULTS_DIR, run_key

    path = RESULTS_DIR / f"{run_key(shipped_config(point), encoder_sha256, variant)}.jsonl"
    if not path.is_file():
        return {}
    return {r["pair"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def calibrate(
    gallery: Gallery, variant: str, points: tuple[str, ...], heads: dict[str, FoldHeads], encoder_sha256: str
) -> dict:
    """The fold-wise report of clear float and each point; `heads` (per point) keeps the heads fitted
    without each fold set, for shipping after."""
    primary = variant == "original"
    report = {
        "protocol": __doc__.split("Protocol")[1].split("Levels travel")[0].strip(),
        "variant": variant,
        "folds": gallery.n_folds,
        "images": len(gallery.paths),
        "people": int(len(set(gallery.person))),
        "view2_folds_identity_disjoint": not gallery.people_in_several_folds,
        "look_alike_groups": {"k": gallery.n_groups, **gallery.group_sizes()},
        "levels": {n: t for n, t in LEVELS.items()},
        "models": {},
    }
    clear = f"clear float {gallery.vectors.shape[1]}-d"
    models: list[tuple[str, HeadConfig | None, str | None]] = [(clear, None, None)]
    models += [(f"{p} head (integer model = FHE)", shipped_config(p), p) for p in points]
    for key, config, point in models:
        start = time.perf_counter()
        recorded = _recorded(point, encoder_sha256, variant) if point and primary else None
        if point:
            heads[point] = FoldHeads(gallery, config, point)
        report["models"][key] = calibrate_model(gallery, config, point or "clear", recorded, heads=heads.get(point))
        brief = {
            n: (round(v["fmr"]["mean"], 5), round(v["tar_mean"], 4)) for n, v in report["models"][key]["levels"].items()
        }
        print(f"{key}: (FMR, TAR) {brief}  [{time.perf_counter() - start:.0f} s]", flush=True)
    return report


# ---- real FHE near the thresholds ----------------------------------------------------------------
def near_threshold_pairs(
    gallery: Gallery, head: HeadParams, per_level: int, templates: Templates | None = None
) -> list[tuple[str, int, int]]:
    """Per level, `per_level` pairs whose raw scores lie closest to its threshold, half on each side
    (impostor pairs of all folds and View 2 same pairs; for a several-photo level, the attempts of
    `templates`, whose rows follow the gallery's images), interleaved level by level."""
    scorer = Scorer(gallery.vectors, head)
    i = np.concatenate([gallery.impostors[f][0] for f in range(10)] + [gallery.pair_left[gallery.pair_same]])
    j = np.concatenate([gallery.impostors[f][1] for f in range(10)] + [gallery.pair_right[gallery.pair_same]])
    one_photo = (i, j, scorer(i, j))
    if templates is not None:
        ti = np.concatenate([templates.impostor[f][0] for f in range(10)] + [g[0] for g in templates.genuine])
        tj = np.concatenate([templates.impostor[f][1] for f in range(10)] + [g[1] for g in templates.genuine])
        several = (ti, tj, Scorer(templates.vectors, head)(ti, tj))
    rng = np.random.default_rng(17)
    chosen: dict[str, list[tuple[int, int]]] = {}
    for name, t in zip(head.levels, head.level_thresholds, strict=True):
        if name.endswith(SEVERAL_PHOTOS) and templates is None:
            continue
        i, j, s = several if name.endswith(SEVERAL_PHOTOS) else one_photo
        picks = []
        for side in (s < t, s >= t):
            idx = np.flatnonzero(side)
            dist = np.abs(s[idx] - (t - 0.5)) + rng.random(len(idx)) * 0.1  # random among ties
            picks += [int(k) for k in idx[np.argsort(dist)[: per_level // 2]]]
        chosen[name] = [(int(i[k]), int(j[k])) for k in picks]
    return [(n, *chosen[n][k]) for k in range(per_level) for n in chosen if k < len(chosen[n])]


def _fhe_summary(
    point: str, circuit_id: str, head: HeadParams, selected: list[tuple[str, int, int]], done: dict
) -> dict:
    """The report of the near-threshold pairs run so far, per level."""
    records = [done[p] for p in selected if p in done]
    summary = {
        "protocol": f"real FHE ({point} head as shipped, FHEClient keygen/encrypt of template and probe separately, "
        "FHEServer.run, decrypt): per level the pairs (View 2 impostor + same pairs) whose raw integer scores lie "
        "closest to that level's threshold, half on each side; for a several-photo level, templates of "
        f"{', '.join(map(str, SEVERAL_PHOTOS_KS))} photos (training.security_levels.Templates) against photos",
        "point": point,
        "circuit_id": circuit_id,
        "pairs_selected": len(selected),
        "pairs_run": len(records),
        "levels": {},
        "server_run_s_median": float(np.median([r["server_s"] for r in records])) if records else None,
    }
    for level, t in zip(head.levels, head.level_thresholds, strict=True):
        rs = [r for r in records if r["level"] == level]
        summary["levels"][level] = {
            "raw_threshold": t,
            "pairs": len(rs),
            "accepted_by_fhe": sum(r["fhe"] for r in rs),
            "raw_score_range": [min(r["raw_score"] for r in rs), max(r["raw_score"] for r in rs)] if rs else None,
            "fhe_vs_integer_model_disagreements": sum(r["fhe"] != r["integer_model"] for r in rs),
        }
    return summary


def run_fhe(
    gallery: Gallery,
    point: str,
    per_level: int,
    report_only: bool = False,
    levels: list[str] | None = None,
    encoder: str | None = None,
) -> int:
    from fhe_head.client import FHEClient
    from fhe_head.server import FHEServer

    client, server = FHEClient(point), FHEServer(point)
    head = client.head
    if not head.levels:
        print(f"error: the {point} head has no levels; run python -m training.security_levels first", file=sys.stderr)
        return 2
    work = cache_dir() / "security_levels" / client.meta["circuit_id"]
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "decisions.jsonl"
    committed = METRICS / "security_levels_fhe" / f"{point}-{client.meta['circuit_id']}.jsonl"
    done = {}
    for path in (committed, checkpoint):
        if path.is_file():
            for r in map(json.loads, filter(None, path.read_text().splitlines())):
                done[(r["level"], r["i"], r["j"])] = r
    several = any(n.endswith(SEVERAL_PHOTOS) for n in head.levels) and encoder is not None
    templates = Templates(gallery, encoder, SEVERAL_PHOTOS_KS) if several else None
    vectors = templates.vectors if templates else gallery.vectors  # the gallery's images come first
    selected = near_threshold_pairs(gallery, head, per_level, templates)
    todo = [] if report_only else [p for p in selected if p not in done and (not levels or p[0] in levels)]
    if todo:
        client.generate_keys()
        keys = server.load_evaluation_keys(client.evaluation_keys())
    print(f"{point}: {len(done)} pairs done, {len(todo)} to run", flush=True)
    with checkpoint.open("a") as log:
        for n, (level, i, j) in enumerate(todo):
            template = client.encrypt(vectors[i])
            probe = client.encrypt(vectors[j], level)
            start = time.perf_counter()
            result = server.run(template, probe, keys)
            seconds = time.perf_counter() - start
            qa, qb = head.quantize(vectors[i]), head.quantize(vectors[j], level)
            record = {
                "level": level,
                "i": i,
                "j": j,
                "raw_score": int(head.raw_score(qa, qb)),
                "fhe": int(client.decrypt(result)),
                "integer_model": int(head.decide(qa, qb)),
                "server_s": round(seconds, 4),
            }
            log.write(json.dumps(record) + "\n")
            log.flush()
            done[(level, i, j)] = record
            if n % 20 == 0:
                # The repository's copy too, so another machine resumes a run cut short.
                committed.parent.mkdir(parents=True, exist_ok=True)
                committed.write_text("".join(json.dumps(r) + "\n" for r in done.values()))
                print(
                    f"  {n + 1}/{len(todo)} {level}: fhe {record['fhe']}, model {record['integer_model']}",
                    flush=True,
                )
    committed.parent.mkdir(parents=True, exist_ok=True)
    committed.write_text("".join(json.dumps(r) + "\n" for r in done.values()))
    summary = _fhe_summary(point, client.meta["circuit_id"], head, selected, done)
    (METRICS / f"security_levels_fhe_{point}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["levels"], indent=1))
    return 0


# ---- entry point ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: $LFW_DIR)")
    parser.add_argument(
        "--encoder", choices=ENCODERS, default=DEFAULT_ENCODER, help="face encoder (default: %(default)s)"
    )
    parser.add_argument("--points", nargs="*", default=list(POINTS), choices=POINTS)
    parser.add_argument("--no-ship", action="store_true", help="report only; do not recompile the shipped heads")
    parser.add_argument("--ship-only", action="store_true", help="recompile the shipped heads; no fold-wise report")
    parser.add_argument("--fhe", choices=POINTS, help="real FHE near each level's threshold with the shipped POINT")
    parser.add_argument("--pairs-per-level", type=int, default=200)
    parser.add_argument(
        "--folds", type=int, default=10, help="use View 2's first N folds only (a report on fewer folds says so)"
    )
    parser.add_argument("--report-only", action="store_true", help="with --fhe: summarise the pairs run so far")
    several = [n + SEVERAL_PHOTOS for n, target in LEVELS.items() if target is not None]
    parser.add_argument(
        "--levels", nargs="*", choices=LEVEL_NAMES + tuple(several), help="with --fhe: run these levels' pairs only"
    )
    args = parser.parse_args(argv)
    lfw = open_lfw_for_cli(args.lfw_dir)
    from training.embeddings import encoder_vectors

    view2 = [p for p in lfw.view2() if p.fold < args.folds]
    variant = lfw.variant()
    # The same embeddings train_head uses (its cache, the jitter TTA), View 2's images only.
    vectors = encoder_vectors(unique_images(view2), args.encoder, desc=f"LFW {variant}")
    gallery = Gallery(view2, vectors.vectors)
    if args.fhe:
        return run_fhe(gallery, args.fhe, args.pairs_per_level, args.report_only, args.levels, args.encoder)
    if (args.ship_only or not args.no_ship) and variant == "original" and gallery.n_folds != 10:
        print("error: the shipped heads are calibrated on all 10 folds; add --no-ship with --folds", file=sys.stderr)
        return 2
    if args.ship_only:
        shipped = {p: ship(gallery, p, vectors.model_sha256, vectors.encoder) for p in args.points}
        (METRICS / "security_levels_shipped.json").write_text(json.dumps(shipped, indent=1) + "\n")
        return 0
    heads: dict[str, FoldHeads] = {}
    report = calibrate(gallery, variant, tuple(args.points), heads, vectors.model_sha256)
    shipped_path = METRICS / "security_levels_shipped.json"
    if variant == "original" and not args.no_ship:
        report["shipped"] = {p: ship(gallery, p, vectors.model_sha256, vectors.encoder, heads[p]) for p in args.points}
        shipped_path.write_text(json.dumps(report["shipped"], indent=1) + "\n")  # what a later --no-ship run reports
    elif variant == "original" and shipped_path.is_file():
        report["shipped"] = json.loads(shipped_path.read_text())
    suffix = "" if variant == "original" else "_" + variant.replace("-", "")
    METRICS.mkdir(parents=True, exist_ok=True)
    (METRICS / f"security_levels{suffix}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_det(report, METRICS / f"security_levels_det{suffix}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
