"""Every `PRIVFACE_*` environment variable, read in one place and typed.

    PRIVFACE_ARTIFACTS       the artifacts root (ONNX encoder, compiled heads); default: the checkout's or
                             the installed copy (`privface_core.resources.artifacts_dir`)
    PRIVFACE_CACHE           the user cache (encoder model converted on the user's machine);
                             default $XDG_CACHE_HOME/privface, else ~/.cache/privface
    PRIVFACE_URL             the verification server the app and the CLI talk to (the app: none = its own
                             embedded server; the CLI: http://127.0.0.1:8000)
    PRIVFACE_RAY_ADDRESS     the Ray cluster the server runs its FHE work on (HOST:PORT)
    PRIVFACE_MODE            the app's privacy text: local, remote or space (default: found from the others)
    PRIVFACE_SESSION_IDLE_S  the app: idle seconds before a session's keys are deleted (default 900)
    PRIVFACE_SWEEP_S         the app: how often ended or idle sessions are looked for (default 30)
    PRIVFACE_SERVER_LIMITS   the app's embedded server: "max_keys=8,max_key_idle_s=3600" (its --limit)

Each is read when asked for (`settings().url`: a dictionary lookup), so a process that changes its environment,
or a test, sees the change, and a bad value of one (a `SettingError` naming it) fails only what uses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from privface_core.errors import SettingError

__all__ = ["MODES", "Settings", "settings"]

MODES = ("local", "remote", "space")


class Settings:
    """The PRIVFACE_* settings of one environment, typed."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    def _text(self, name: str) -> str | None:
        return self._env.get(name, "").strip() or None

    def _seconds(self, name: str, default: float) -> float:
        text = self._text(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 < value < float("inf"):
            raise SettingError(f"{name}={text!r}: expected a number of seconds above 0")
        return value

    @property
    def artifacts(self) -> Path | None:
        text = self._text("PRIVFACE_ARTIFACTS")
        return Path(text).expanduser() if text else None

    @property
    def cache(self) -> Path:
        root = self._text("PRIVFACE_CACHE") or os.path.join(self._text("XDG_CACHE_HOME") or "~/.cache", "privface")
        return Path(root).expanduser()

    @property
    def url(self) -> str | None:
        return self._text("PRIVFACE_URL")

    @property
    def ray_address(self) -> str | None:
        return self._text("PRIVFACE_RAY_ADDRESS")

    @property
    def mode(self) -> str | None:
        mode = self._text("PRIVFACE_MODE")
        if mode is not None and mode not in MODES:
            raise SettingError(f"PRIVFACE_MODE={mode!r}: expected one of {', '.join(MODES)}")
        return mode

    @property
    def session_idle_s(self) -> float:
        return self._seconds("PRIVFACE_SESSION_IDLE_S", 15 * 60)

    @property
    def sweep_s(self) -> float:
        return self._seconds("PRIVFACE_SWEEP_S", 30)

    @property
    def server_limits(self) -> tuple[str, ...]:
        text = self._env.get("PRIVFACE_SERVER_LIMITS", "")
        return tuple(part.strip() for part in text.split(",") if part.strip())


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The PRIVFACE_* settings of `environ` (default: this process's environment)."""
    return Settings(environ)
