"""The app as a user meets it: photo upload -> verdict on screen, timed in a real browser.

    python -m training.bench.app_path [--sessions 3] [--later 2] [--points accurate fast]

Starts `streamlit run streamlit_app.py` (no file watcher, as `make run` does; `--watchers none auto`
also times the watcher Streamlit uses by default, side by side), then drives it with Playwright and
Debian's Chromium. Per point, each of `--sessions` fresh browser sessions makes one first comparison
(its keys are generated and uploaded) and `--later` more with other photos (keys reused), then presses
Compare again on the same photos (encodings cached). Times, measured in the browser:
- upload_s: a file chosen -> its preview (face found) on screen, per photo;
- first_s / later_s: both photos uploaded + Compare pressed -> verdict on screen (the user's wait);
- press_s: Compare pressed -> verdict (photos already uploaded), first / later / re-press;
- server_fhe_s: the server's FHE time as the app shows it.
An untimed warm-up session first loads the encoder and waits for the embedded server (once per app
process). Photos: the bundled public-domain examples, so the verdicts are checked too.
Writes artifacts/metrics/app_path.json. The machine is shared: the JSON records its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fhe_head.artifacts import ARTIFACTS_ROOT, META_FILE
from privface.app_support import app_command
from privface.local_server import free_port, stop_process_group
from privface.resources import EXAMPLES_DIR
from training.paths import METRICS

REPO = Path(__file__).resolve().parents[2]
OUT = METRICS / "app_path.json"
SAME, DIFFERENT = "Same person", "Different people"
# (photo 1, photo 2, expected verdict): the first pair starts each session; the others come later.
PAIRS = [
    ("obama.jpg", "obama2.jpg", SAME),
    ("obama3.jpg", "biden.jpg", DIFFERENT),
    ("obama2.jpg", "obama3.jpg", SAME),
    ("astronaut.jpg", "cameraman.jpg", DIFFERENT),
    ("obama.jpg", "biden.jpg", DIFFERENT),
]
TIMEOUT_MS = 300_000


def start_app(watcher: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = app_command(port, watcher)
    env = {**os.environ, "TMPDIR": str(tmp)}
    env.pop("PRIVFACE_URL", None)
    log = (tmp / "streamlit.log").open("wb")
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited: {(tmp / 'streamlit.log').read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("streamlit did not start within 300 s")


class Session:
    """One browser session on the app (its own keys), with the user's actions timed."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.goto(url)
        self.page.get_by_role("button", name=re.compile("compare", re.I)).wait_for(timeout=TIMEOUT_MS)
        self.page.get_by_text("Your photos", exact=True).click()
        self.page.locator('input[type="file"]').nth(1).wait_for(state="attached", timeout=TIMEOUT_MS)
        self.comparisons = 0

    def upload(self, index: int, name: str) -> float:
        start = time.perf_counter()
        self.page.locator('input[type="file"]').nth(index).set_input_files(EXAMPLES_DIR / name)
        self.page.get_by_text(f"Photo {index + 1} ({name}): face found").wait_for(timeout=TIMEOUT_MS)
        return time.perf_counter() - start

    def choose_point(self, point: str) -> None:
        box = self.page.get_by_role("combobox", name="Encrypted head")
        box.click()
        self.page.keyboard.press("ArrowDown")
        self.page.get_by_role("option", name=re.compile(f"^{point}")).click()
        self.page.wait_for_timeout(500)

    def press(self) -> tuple[float, str, float]:
        """Compare -> verdict on screen: (seconds, verdict shown, server FHE seconds the app reports)."""
        self.comparisons += 1
        start = time.perf_counter()
        self.page.get_by_role("button", name=re.compile("compare", re.I)).click()
        done = self.page.get_by_text(re.compile(rf"^Comparison {self.comparisons} done in"))
        error = self.page.locator('[data-testid="stAlertContentError"]')
        done.or_(error).first.wait_for(timeout=TIMEOUT_MS)
        took = time.perf_counter() - start
        if error.count():
            raise RuntimeError(f"the app reported: {error.all_inner_texts()}")
        verdict = SAME if self.page.get_by_text(SAME, exact=True).count() else DIFFERENT
        caption = self.page.get_by_text(re.compile("server's FHE computation")).first.inner_text()
        fhe_s = float(re.search(r"FHE computation ([\d.]+) s", caption).group(1))
        return took, verdict, fhe_s

    def close(self) -> None:
        self.context.close()


def summary(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
        "values": [round(v, 3) for v in values],
    }


def run_point(browser, url: str, point: str, sessions: int, later: int) -> dict:
    times: dict[str, list[float]] = {k: [] for k in ("upload", "first", "later", "press_first", "press_later")}
    times["repress"], fhe, checked = [], [], []
    for _ in range(sessions):
        session = Session(browser, url)
        try:
            session.choose_point(point)
            for number, (a, b, expected) in enumerate(PAIRS[: 1 + later]):
                uploads = [session.upload(0, a), session.upload(1, b)]
                took, verdict, fhe_s = session.press()
                kind = "first" if number == 0 else "later"
                times["upload"] += uploads
                times[kind].append(sum(uploads) + took)
                times[f"press_{kind}"].append(took)
                fhe.append(fhe_s)
                checked.append(verdict == expected)
            took, verdict, fhe_s = session.press()  # the same photos again: cached encodings, same keys
            times["repress"].append(took)
            checked.append(verdict == PAIRS[later][2])
        finally:
            session.close()
    meta = json.loads((ARTIFACTS_ROOT / point / META_FILE).read_text())
    return {
        "first_s": summary(times["first"]),
        "later_s": summary(times["later"]),
        "upload_s": summary(times["upload"]),
        "press_first_s": summary(times["press_first"]),
        "press_later_s": summary(times["press_later"]),
        "repress_s": summary(times["repress"]),
        "server_fhe_s": summary(fhe),
        "verdicts_correct": f"{sum(checked)}/{len(checked)}",
        "circuit": {k: meta.get(k) for k in ("dims", "circuit_id", "complexity", "programmable_bootstrap_count")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=3, help="fresh browser sessions per point")
    parser.add_argument("--later", type=int, default=2, help="comparisons after the first, per session")
    parser.add_argument("--points", nargs="+", default=["accurate", "fast"])
    parser.add_argument("--watchers", nargs="+", default=["none"], choices=("none", "auto", "poll", "watchdog"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not 0 <= args.later < len(PAIRS):
        parser.error(f"--later must be between 0 and {len(PAIRS) - 1}")
    chromium = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("error: no Chromium binary: apt-get install chromium (or set CHROMIUM_PATH)", file=sys.stderr)
        return 1
    import streamlit
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        for watcher in args.watchers:
            with tempfile.TemporaryDirectory(prefix="privface-bench-") as tmp:
                process, url = start_app(watcher, Path(tmp))
                try:
                    warm = Session(browser, url)  # untimed: encoder load + embedded server start
                    warm.choose_point("fast")
                    warm.upload(0, PAIRS[0][0])
                    warm.upload(1, PAIRS[0][1])
                    warm.press()
                    warm.close()
                    results[watcher] = {p: run_point(browser, url, p, args.sessions, args.later) for p in args.points}
                finally:
                    stop_process_group(process)
            medians = {
                p: {k: v["median"] for k, v in r.items() if isinstance(v, dict) and "median" in v}
                for p, r in results[watcher].items()
            }
            print(json.dumps({watcher: medians}, indent=1))
        browser.close()
    main_watcher = "none" if "none" in results else args.watchers[0]
    report = {
        "what": "the Streamlit app in headless Chromium: photo upload -> decrypted verdict on screen",
        "protocol": (
            f"per point: {args.sessions} fresh browser sessions, each 1 first comparison (keys generated and "
            f"uploaded) + {args.later} later ones with other photos (keys reused) + 1 re-press on the same photos "
            "(encodings cached); first_s / later_s = both uploads + Compare -> verdict; an untimed warm-up "
            "session first (encoder load, embedded server start); real FHE on the app's embedded loopback server"
        ),
        "photos": "privface/examples (public domain), verdicts checked against the known identities",
        "file_watcher": main_watcher,
        "points": results[main_watcher],
        "by_file_watcher": results if len(results) > 1 else None,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "note": "2 cores shared with other jobs at the time: times are noisy; compare within this file",
            "python": platform.python_version(),
            "streamlit": streamlit.__version__,
            "browser": f"Chromium headless ({chromium}) via Playwright",
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
