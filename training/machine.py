"""The machine a measurement ran on (CPU model, cores), as the metrics JSON records it."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """{"cpu", "cores"}: the machine block of a benchmark's JSON."""
    return {"cpu": cpu_name(), "cores": os.cpu_count()}


def machine_label(machine: dict) -> str:
    """One line for a report, from `machine_info()`'s dict."""
    return f"{machine['cpu']}, {machine['cores']} cores, no GPU"


def rss_bytes(pid: int | None = None) -> int:
    """A process's resident memory now (Linux: /proc/PID/status VmRSS; 0 if unreadable). Default: this process."""
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
