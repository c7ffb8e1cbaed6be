"""Exact-format checks for what clients send: ciphertexts and evaluation keys, before anything parses them.

concrete's parser accepts more than a client of a given circuit can produce (uncompressed
ciphertexts with a chosen mask, size fields that make it allocate gigabytes, trailing bytes).
A genuine input of one circuit has one exact encoding: the same length and the same structural
bytes (Cap'n Proto segment table, pointers, compression flags, our circuit tag) every time; only
the key material and ciphertext bodies differ. `formats.json` beside a point's artifacts records
that shape, learnt from genuine encryptions; the server refuses anything else in microseconds.

Learning needs secret keys, so it is a build step (`python -m fhe_head.build formats fast accurate`,
`fhe_head.build.record_formats`); this module only reads and checks (the server imports it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fhe_head.artifacts import FORMATS_FILE
from privface_core.errors import ArtifactError, CiphertextError, EvaluationKeyError

# A byte counts as structure when it is equal across all samples within a run at least this long:
# runs of random key material that agree by chance over 8 bytes have probability 2^-64 per offset.
MIN_RUN = 8


class CiphertextFormatError(CiphertextError):
    """A ciphertext not in its circuit's exact encoding (the message names no runtime internals)."""


class KeyFormatError(EvaluationKeyError):
    """Evaluation keys not in their circuit's exact encoding."""


@dataclass(frozen=True)
class ExactFormat:
    """An encoding with a fixed length whose structural bytes are fixed too."""

    length: int
    fixed: tuple[tuple[int, bytes], ...]  # (offset, bytes) runs every genuine input has

    @classmethod
    def learn(cls, samples: list[bytes]) -> ExactFormat:
        lengths = {len(s) for s in samples}
        if len(samples) < 2 or len(lengths) != 1:
            raise ArtifactError(f"cannot learn an exact format: sample lengths {sorted(lengths)}")
        import numpy as np

        length, first = lengths.pop(), samples[0]
        arrays = [np.frombuffer(s, dtype=np.uint8) for s in samples]
        same = np.logical_and.reduce([a == arrays[0] for a in arrays[1:]])
        edges = np.flatnonzero(np.diff(np.concatenate(([0], same.astype(np.int8), [0]))))
        fixed = [(int(a), first[a:b]) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= MIN_RUN]
        return cls(length, tuple(fixed))

    def check(self, data: bytes, error: type[ValueError], what: str) -> None:
        """Raise `error` unless `data` has exactly this encoding."""
        if len(data) != self.length:
            raise error(f"{what}: {len(data)} bytes; this circuit's are exactly {self.length}")
        for offset, expected in self.fixed:
            if data[offset : offset + len(expected)] != expected:
                raise error(f"{what}: not in this circuit's encoding (seed-compressed, exact layout)")

    def to_json(self) -> dict:
        return {"length": self.length, "fixed": [[offset, run.hex()] for offset, run in self.fixed]}

    @classmethod
    def from_json(cls, data: dict) -> ExactFormat:
        return cls(int(data["length"]), tuple((int(o), bytes.fromhex(h)) for o, h in data["fixed"]))


@dataclass(frozen=True)
class PointFormats:
    """The encodings one compiled point accepts (bytes as they travel: circuit tag included)."""

    circuit_id: str
    ciphertext: ExactFormat
    evaluation_keys: ExactFormat

    def check_ciphertext(self, data: bytes, what: str = "ciphertext") -> None:
        self.ciphertext.check(data, CiphertextFormatError, what)

    def check_evaluation_keys(self, data: bytes) -> None:
        self.evaluation_keys.check(data, KeyFormatError, "evaluation keys")

    @classmethod
    def load(cls, directory: Path, meta: dict) -> PointFormats:
        path = directory / FORMATS_FILE
        if not path.is_file():
            raise ArtifactError(
                f"{directory}: missing {FORMATS_FILE} (run: python -m fhe_head.build formats {directory.name})"
            )
        data = json.loads(path.read_text())
        if data.get("circuit_id") != meta["circuit_id"]:
            raise ArtifactError(
                f"{path} describes another circuit (run: python -m fhe_head.build formats {directory.name})"
            )
        return cls(
            data["circuit_id"],
            ExactFormat.from_json(data["ciphertext"]),
            ExactFormat.from_json(data["evaluation_keys"]),
        )
