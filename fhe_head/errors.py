"""Errors raised by the FHE head's client and server (all ValueError: bad input, not a crash)."""


class ArtifactError(ValueError):
    """Artifacts missing, of another version, or built for another encoder."""


class CiphertextError(ValueError):
    """A ciphertext that is corrupted, truncated, or made for another circuit."""


class EvaluationKeyError(ValueError):
    """Evaluation keys that cannot be read."""


class NotABitError(ValueError):
    """The decrypted result is not 0 or 1: the ciphertext was run or decrypted under another key."""
