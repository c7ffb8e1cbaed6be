"""One result shape for every comparison (`compare`, `verify`): the library returns it, the CLI
prints it (`--json` prints `to_dict()`), and its fields name what the HTTP answer carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["CompareResult"]


@dataclass
class CompareResult:
    """A decrypted answer and what it cost.

    `timings` (seconds): `encode_s` (photos -> embeddings, on this device), `encrypt_s`,
    `server_fhe_s` (the circuit on the server), `round_trip_s` (HTTP, server time included),
    `decrypt_s`, `total_s` (this call end to end). `sizes` (bytes): `template`, `probe`, `result`.
    """

    same: bool  # the decrypted bit: True = same person
    point: str  # which head ("accurate", "fast")
    level: str | None = None  # security level of the comparison, where the head has levels
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    name: str | None = None  # the enrolled template compared against, for `verify`
    # Photos the template came from (1 for `compare`; for `verify`, as this client enrolled it, None if it
    # did not): the level's several-photo threshold applies unless it is 1.
    template_photos: int | None = 1

    @property
    def verdict(self) -> str:
        return "same person" if self.same else "different people"

    @property
    def fhe_s(self) -> float:
        return self.timings.get("server_fhe_s", 0.0)

    @property
    def total_s(self) -> float:
        return self.timings.get("total_s", 0.0)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["verdict"] = self.verdict
        data["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return data
