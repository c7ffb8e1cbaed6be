"""privface: compare two photos, or enrol a person from several photos and verify a new one; the
comparison itself runs under fully homomorphic encryption.

    streamlit run streamlit_app.py --server.fileWatcherType none

This page is the client: each photo becomes an embedding in the app's process, is quantised and
encrypted on its own, and goes to the verification server, which compares the two ciphertexts and
returns an encrypted bit that only this browser session's secret key decrypts. By default the app
starts the server itself on loopback (and restarts it if it dies); set PRIVFACE_URL to use a remote
one. Each session's keys (and its enrolled template) are deleted from the server when the session ends
or sits idle.

Settings (environment): PRIVFACE_URL (a remote server), PRIVFACE_SESSION_IDLE_S (idle time before a
session's keys are deleted, default 900), PRIVFACE_SERVER_LIMITS ("max_keys=8,..." for the embedded
server), PRIVFACE_MODE (local / remote / space: which privacy text; a Space is found by SPACE_ID).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from client_encoder import FaceEncoder, FaceEncoding, distance
from client_encoder.encoder import MAX_ENROL_PHOTOS
from client_encoder.images import FORMATS_TEXT, MAX_FILE_BYTES, MAX_PIXELS, MB, MIN_SIDE, WORK_PIXELS
from fhe_head.artifacts import ARTIFACTS_ROOT, DEFAULT_POINT, META_FILE, POINTS, head_encoder
from privface.app_support import EmbeddedServer, KeyRegistry
from privface.client import Encrypted, ServerAnswer, VerificationClient
from privface.levels import default_level, describe, offered_levels
from privface.resources import EXAMPLES_DIR
from privface.result import CompareResult
from privface_core.errors import (
    EnrolmentError,
    InvalidImageError,
    KeysGoneError,
    NoFaceError,
    PrivfaceError,
    ServiceError,
    UnknownTemplateError,
)
from privface_core.resources import metrics_dir
from privface_core.settings import settings

# Public-domain photos (sources and licenses: privface/examples/README.md).
EXAMPLES = {
    "Same person: two photos years apart (Obama 2012 / 2009)": ("obama.jpg", "obama2.jpg"),
    "Same person: another pair (Obama 2012 / 2010)": ("obama.jpg", "obama3.jpg"),
    "Different people cut from one photograph (Obama / Biden)": ("obama3.jpg", "biden.jpg"),
    "Different people (astronaut / cameraman)": ("astronaut.jpg", "cameraman.jpg"),
}
SAME, DIFFERENT = "Same person", "Different people"
IDLE_S = settings().session_idle_s  # a session's keys are deleted after this
SWEEP_S = settings().sweep_s  # how often ended / idle sessions are looked for
CACHED_PHOTOS = MAX_ENROL_PHOTOS + 2  # encodings kept per session: a full enrolment and the photo to verify
PREVIEW_SIDE = 480  # px, the thumbnail sent to the browser
PREVIEW_WIDTH = 280  # px on the page, at most: both photos and the button fit on one screen (1366x768)
PREVIEW_HEIGHT = 260  # px on the page, at most (a portrait photo is shown narrower)
COMPARE, ENROL = "Compare two photos", "Enrol, then verify"
ENROL_COLUMNS = 5  # enrolment previews per row
ENROL_PREVIEW_HEIGHT = 180  # px on the page: a row of enrolment previews stays short
T = TypeVar("T")

FLOW = """digraph {
  rankdir=LR; node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=11];
  subgraph cluster_app { label="%s"; fontname="sans-serif"; fontsize=11; style=dashed;
    photos [label="2 photos", fillcolor="#e8f0fe"]; enc [label="face -> embedding\\n-> encrypt", fillcolor="#e8f0fe"];
    dec [label="decrypt\\n(secret key)", fillcolor="#e8f0fe"]; }
  subgraph cluster_server { label="verification server"; fontname="sans-serif"; fontsize=11; style=dashed;
    fhe [label="compare under FHE\\n(sees ciphertexts only)", fillcolor="#fdf0e0"]; }
  photos -> enc; enc -> fhe [label="2 ciphertexts"]; fhe -> dec [label="encrypted bit"];
}"""


# ---- where things run: the privacy text depends on it -------------------------------------------
def mode() -> str:
    """'space' (hosted: the app runs on someone else's machine), 'remote' (local app, remote server) or 'local'."""
    if settings().mode:
        return settings().mode
    if os.environ.get("SPACE_ID"):  # set by Hugging Face Spaces
        return "space"
    return "remote" if settings().url else "local"


def privacy_text(where: str) -> str:
    idle = f"{IDLE_S / 60:.0f} minutes"
    server_sees = (
        "The verification server receives your evaluation keys (they let it compute on ciphertexts, not "
        "decrypt them) and two ciphertexts per comparison; it returns an encrypted bit. It never sees a face, "
        "an embedding, a score or the answer."
    )
    if where == "space":
        return (
            "**Hosted demo: this app runs on the host's machine, not on your device.** Your photos are uploaded "
            "to it; the face embeddings and this session's secret key live in its memory (not on disk) and the "
            f"keys are deleted when you close the page or after {idle} idle. {server_sees} What this protects is "
            "the server's side: for privacy from the host too, run the app or the command line on your own "
            "machine."
        )
    if where == "remote":
        return (
            "**This app runs on your machine; the server is elsewhere.** Photos, embeddings and the secret key stay "
            f"in this app's memory. {server_sees} Your keys are deleted from the server when you close the page or "
            f"after {idle} idle."
        )
    return (
        "**Everything runs on this machine**: the app (photos, embeddings, secret key, in memory) and the "
        f"verification server it started on loopback. {server_sees} With both on one machine, this shows what a "
        "remote server would see; use the command line or PRIVFACE_URL to put the server elsewhere."
    )


def point_label(point: str) -> str:
    """'accurate (64 dims; 99.0% on LFW, real FHE; ~T s a comparison in this app)' from the metrics files."""
    parts = []
    with contextlib.suppress(OSError, ValueError, KeyError, StopIteration):
        # The real-FHE figure only if its run is of the shipped head; else the head's integer model (= FHE).
        shipped = json.loads((ARTIFACTS_ROOT / point / META_FILE).read_text())["config"]
        fhe = json.loads(
            (metrics_dir() / ("lfw_fhe.json" if point == "accurate" else f"lfw_fhe_{point}.json")).read_text()
        )
        if fhe["config"] == shipped:
            pairs = f" ({fhe['n_pairs_fhe']} pairs)" if fhe["n_pairs_fhe"] < 6000 else ""
            parts.append(f"{shipped['dims']} dims; {100 * fhe['fhe_accuracy']:.1f}% on LFW, real FHE{pairs}")
        else:
            frontier = json.loads((metrics_dir() / "fhe_frontier.json").read_text())["points"]
            integer = next(p for p in frontier if p["view2"]["config"] == shipped)["view2"]["accuracy_clear_quantised"]
            parts.append(f"{shipped['dims']} dims; {100 * integer:.1f}% on LFW, integer model = FHE")
    with contextlib.suppress(OSError, ValueError, KeyError):
        app = json.loads((metrics_dir() / "app_path.json").read_text())["points"][point]
        parts.append(
            f"a comparison ~{app['later_s']['median']:.1f} s in this app, the first ~{app['first_s']['median']:.0f} s"
        )
    return f"{point} ({'; '.join(parts)})" if parts else point


# ---- process-wide state: the embedded server and every session's keys ---------------------------
@st.cache_resource
def embedded_server() -> EmbeddedServer:
    """PRIVFACE_SERVER_LIMITS="max_keys=8,max_idle_s=3600" passes limits to it (`--limit`)."""
    return EmbeddedServer(limits=settings().server_limits)


def server_url() -> str:
    """PRIVFACE_URL, or the embedded server (checked, and restarted if it died)."""
    if settings().url:
        return settings().url
    server = embedded_server()
    server.ensure_running()
    return server.url


def _session_alive(session_id: str) -> bool:
    from streamlit import runtime

    if not runtime.exists():  # streamlit.testing: no runtime, only the idle rule applies
        return True
    return runtime.get_instance().is_active_session(session_id)


@st.cache_resource
def key_registry() -> KeyRegistry:
    return KeyRegistry(IDLE_S, SWEEP_S, alive=_session_alive)


def session_id() -> str:
    """Streamlit's id of this browser session (streamlit.testing has none: a random one per test app)."""
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx and runtime.exists():
        return ctx.session_id
    return st.session_state.setdefault("privface_session", uuid.uuid4().hex)


@st.cache_resource
def get_encoder() -> FaceEncoder:
    """The encoder the shipped heads were trained on (they share one: photos are encoded before a head is chosen)."""
    return FaceEncoder(encoder=head_encoder(DEFAULT_POINT))


# ---- photos: read, checked and encoded once each, as soon as they are chosen ---------------------
@dataclass
class Photo:
    label: str  # how the page names it: "Photo 1 (name.jpg)"
    pixels: np.ndarray | None = None
    encoding: FaceEncoding | None = None
    problem: str | None = None  # why it cannot be used
    took_s: float = 0.0

    @property
    def error(self) -> str | None:
        return f"{self.label}{self.problem}" if self.problem else None


def read_photo(label: str, key: str, source) -> Photo:
    """Decode, detect and embed, cached in this session by content (a re-press never re-encodes);
    the label is this use's, not the cached one's (the same file may come back as the other photo)."""
    cache: OrderedDict[str, Photo] = st.session_state.setdefault("photos", OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return replace(cache[key], label=label)
    photo = Photo(label)
    start = time.perf_counter()
    try:
        photo.encoding = get_encoder().encode(source)
        photo.pixels = photo.encoding.located.pixels
    except InvalidImageError as err:
        photo.problem = f" cannot be used: {err}"
    except NoFaceError:
        photo.problem = ": no face found. Use a photo where a face is clearly visible (frontal, not too small)."
    photo.took_s = time.perf_counter() - start
    cache[key] = photo
    while len(cache) > CACHED_PHOTOS:
        cache.popitem(last=False)
    return photo


def example_photo(name: str) -> Photo:
    return read_photo(name, f"example:{name}", EXAMPLES_DIR / name)


def photo_input(column, number: int, title: str = "") -> Photo | None:
    """Upload or camera for one side (or for `title`, e.g. "Photo to verify"); None until something is chosen."""
    title = title or f"Photo {number}"
    mode_ = column.radio(f"{title} from", ["Upload", "Camera"], horizontal=True, key=f"mode{number}")
    if mode_ == "Camera":
        shot = column.camera_input(title, key=f"camera{number}")
        if not shot:
            return None
        data, label = shot.getvalue(), f"{title} (camera)"
    else:
        # Any file is taken, then checked here: the uploader's own type filter refuses with no reason given.
        upload = column.file_uploader(title, key=f"upload{number}")
        if not upload:
            return None
        data, label = upload.getvalue(), f"{title} ({upload.name})"
    with column, st.spinner(f"Finding the face in {title[0].lower()}{title[1:]}…"):
        return read_photo(label, hashlib.sha256(data).hexdigest(), data)


def with_box(photo: Photo) -> Image.Image:
    image = Image.fromarray(photo.pixels)
    if photo.encoding:
        ImageDraw.Draw(image).rectangle(photo.encoding.face.box, outline=(0, 200, 0), width=max(2, image.width // 150))
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return image


def show_preview(column, photo: Photo | None, number: int) -> None:
    if photo is None:
        column.caption(f"Photo {number}: none chosen yet.")
    elif photo.error:
        column.error(photo.error)
    else:
        image = with_box(photo)
        width = min(PREVIEW_WIDTH, round(PREVIEW_HEIGHT * image.width / image.height))
        column.image(image, caption=f"{photo.label}: face found", width=width)
        if photo.encoding.note:
            column.caption(photo.encoding.note)


def hex_preview(data: bytes, n: int = 24) -> str:
    """Bytes from the middle: both ends are framing (our header, concrete's serialization)."""
    middle = len(data) // 2
    return "… " + data[middle : middle + n].hex(" ") + " …"


# ---- one comparison, step by step ------------------------------------------------------------------
@dataclass
class Outcome:
    same: bool
    steps: dict[str, float]
    ciphertexts: list[bytes]
    result: bytes
    fhe_s: float
    key_mb: float
    key_id: str
    first: bool
    restarted: bool
    level: str | None = None  # the security level the probe asked for (inside its ciphertext)
    point: str = ""


def check_server(status, steps: dict[str, float]) -> bool:
    """The embedded server is running (restarted if it died: True); nothing to check with PRIVFACE_URL."""
    if settings().url:
        return False
    status.update(label="Checking the verification server…")
    start = time.perf_counter()
    restarted = embedded_server().ensure_running()
    # Waiting for a server that (re)starts is part of this request's time, as the user lives it.
    steps["server_restart" if restarted else "server_check"] = time.perf_counter() - start
    if restarted:
        status.write(f"The verification server had stopped: restarted it in {steps['server_restart']:.1f} s.")
    return restarted


def session_client(point: str) -> VerificationClient:
    """This browser session's client for `point` (its keys are made on first use and live in this app)."""
    url = server_url()
    return key_registry().client(
        session_id(), f"{point}@{url}", lambda: VerificationClient(url, point, key_dir=None, encoder=get_encoder())
    )


def upload_keys(client: VerificationClient, status, steps: dict[str, float]) -> None:
    status.update(label="Generating your keys (once per session)…")
    bar = status.progress(0.0, text="Generating keys…")
    start = time.perf_counter()
    marks: list[float] = []

    def uploaded(done: int, total: int) -> None:
        if not marks:  # the first chunk: key generation is over
            marks.append(time.perf_counter())
        bar.progress(done / total, text=f"Uploading evaluation keys: {done / 1e6:.0f} / {total / 1e6:.0f} MB")

    client.connect(uploaded)
    end = time.perf_counter()
    steps["keygen"] = (marks[0] if marks else end) - start
    steps["key_upload"] = end - marks[0] if marks else 0.0
    bar.empty()
    status.write(
        f"Keys generated in {steps['keygen']:.1f} s (the secret key stays in this app); evaluation keys "
        f"uploaded in {steps['key_upload']:.1f} s."
    )


def with_keys(client: VerificationClient, status, steps: dict[str, float], action: Callable[[], T]) -> tuple[T, bool]:
    """`action()` once the server holds this session's keys; (its result, whether keys were uploaded)."""
    uploaded = False
    try:
        if client.key_id is None:
            upload_keys(client, status, steps)
            uploaded = True
        return action(), uploaded
    except KeysGoneError:
        # The server no longer holds our keys (evicted, or a fresh server): upload them again, once.
        client.key_id = None
        status.write("The server no longer had your keys: uploading them again.")
        upload_keys(client, status, steps)
        return action(), True


def run_comparison(photos: list[Photo], point: str, level: str | None, status) -> Outcome:
    steps: dict[str, float] = {}
    restarted = check_server(status, steps)
    client = session_client(point)

    def compare() -> tuple[list[Encrypted], ServerAnswer]:
        status.update(label="Encrypting both embeddings…")
        # The first photo is the template; the second, the probe, carries the security level.
        encrypted = [client.encrypt(photos[0].encoding), client.encrypt(photos[1].encoding, level)]
        steps["encrypt"] = sum(e.encrypt_s for e in encrypted)
        status.update(label="Comparing under FHE on the server…")
        answer = client.send_pair(encrypted[0], encrypted[1])
        steps["server_round_trip"] = answer.round_trip_s
        return encrypted, answer

    (encrypted, answer), first = with_keys(client, status, steps, compare)
    status.update(label="Decrypting the answer…")
    start = time.perf_counter()
    same = client.decrypt(answer)
    steps["decrypt"] = time.perf_counter() - start
    return Outcome(
        same=same,
        steps=steps,
        ciphertexts=[e.ciphertext for e in encrypted],
        result=answer.result,
        fhe_s=answer.server_fhe_s,
        key_mb=client.evaluation_key_bytes / 1e6,
        key_id=client.key_id or "",
        first=first,
        restarted=restarted,
        level=level,
        point=point,
    )


def show_result(outcome: Outcome, photos: list[Photo], show_clear: bool, verdict_slot) -> None:
    with verdict_slot.container():
        if outcome.same:
            st.success(SAME, icon=":material/how_to_reg:")
        else:
            st.info(DIFFERENT, icon=":material/group:")
        total = sum(outcome.steps.values())
        st.caption(
            (f"Security level {outcome.level}: {describe(outcome.point, outcome.level)}. " if outcome.level else "")
            + f"Decrypted here. This comparison: {total:.1f} s after the photos were ready, of which the server's "
            f"FHE computation {outcome.fhe_s:.2f} s"
            + (" (first one: keys generated and uploaded)" if outcome.first else "")
            + (
                f" (the server had stopped: restarted in {outcome.steps['server_restart']:.1f} s)"
                if outcome.restarted
                else ""
            )
            + "."
        )
    with st.expander("What happened, step by step", expanded=False):
        columns = st.columns(4)
        for number, photo in enumerate(photos):
            columns[2 * number].image(with_box(photo), width="stretch")
            columns[2 * number + 1].image(photo.encoding.located.chip, caption="aligned 150×150", width=150)
            columns[2 * number].caption(f"{photo.label}: face found and embedded in {photo.took_s:.2f} s")
        st.write(
            f"**Keys**: the secret key stays in this app's memory. Evaluation keys: {outcome.key_mb:.1f} MB, uploaded "
            f"once (key id `{outcome.key_id[:12]}…`); they let the server compute, not decrypt."
        )
        for number, ciphertext in enumerate(outcome.ciphertexts, start=1):
            st.write(f"**Ciphertext {number}**: {len(ciphertext) / 1e3:.1f} KB — `{hex_preview(ciphertext)}`")
        st.write(f"**Encrypted result** ({len(outcome.result) / 1e3:.1f} KB): `{hex_preview(outcome.result, 32)}`")
        # A markdown table: st.table would import pyarrow, which this pinned numpy cannot load.
        rows = "".join(f"| {step.replace('_', ' ')} | {took:.3f} |\n" for step, took in outcome.steps.items())
        st.markdown("| step | seconds |\n|---|---|\n" + rows)
    with st.expander("What the server saw", expanded=False):
        st.write(
            f"Two ciphertexts ({len(outcome.ciphertexts[0]) / 1e3:.1f} KB each), your evaluation keys "
            f"({outcome.key_mb:.1f} MB) and how long the computation took. Not the photos, not the embeddings, not a "
            "distance or score, not the answer: the bit it returned is encrypted under your key."
        )
    if show_clear:
        d = distance(photos[0].encoding.embedding, photos[1].encoding.embedding)
        st.info(f"Clear mode (NOT private): distance {d:.3f}, threshold {get_encoder().threshold:.3f}")


def choose_level(point: str) -> str | None:
    """The key owner's security level for this comparison (it travels inside the probe's ciphertext)."""
    offered = offered_levels(point)
    if not offered:
        return None
    level = st.selectbox(
        "Security level",
        offered,
        index=offered.index(default_level(offered)),
        format_func=lambda name: "balanced (best LFW accuracy)" if name == "balanced" else f"false-match rate {name}",
        help="Chosen here, encrypted inside the second photo's ciphertext: the server cannot tell which level you use.",
    )
    st.caption(f"At this level, {describe(point, level)}.")
    return level


# ---- enrolment: one template from several photos of one person, then verification against it ------
def enrolment_sources(column) -> list[tuple[str, bytes]]:
    """(file name or "camera shot N", bytes) for each photo chosen for the enrolment: uploads, then shots."""
    uploads = column.file_uploader(
        f"Photos of one person (1 to {MAX_ENROL_PHOTOS})", accept_multiple_files=True, key="enrol_uploads"
    )
    sources = [(upload.name, upload.getvalue()) for upload in uploads or []]
    shots: list[bytes] = st.session_state.setdefault("enrol_shots", [])
    if column.toggle("Add camera shots", key="enrol_camera_on"):
        # The widget holds one shot: each new one is kept here (clear it in the widget to take another).
        shot = column.camera_input("Camera shot", key="enrol_camera")
        if shot and shot.getvalue() not in shots:
            shots.append(shot.getvalue())
        if shots and column.button(f"Forget the {len(shots)} camera shot(s)"):
            shots.clear()
    return sources + [(f"camera shot {n}", data) for n, data in enumerate(shots, start=1)]


def show_enrolment_photo(cell, photo: Photo) -> None:
    """Each face found (with its box, and the aligned chip the encoder saw), or why the photo is refused."""
    if photo.error:
        cell.error(photo.error)
        return
    image = with_box(photo)
    cell.image(
        image, caption=f"{photo.label}: face found", width=round(ENROL_PREVIEW_HEIGHT * image.width / image.height)
    )
    cell.image(photo.encoding.located.chip, caption="aligned", width=80)


def enrolment_problem(photos: list[Photo]) -> str | None:
    """Why these photos cannot be enrolled (a photo's own problem is shown with it), or None."""
    if any(photo.error for photo in photos):
        return "Replace or remove the photo marked above first: nothing was enrolled."
    try:  # photos of different people are refused naming the odd one, before anything is sent
        get_encoder().template([photo.encoding.embedding for photo in photos], [photo.label for photo in photos])
    except EnrolmentError as err:
        st.error(f"{err}.")
        return "Replace or remove the photo named above first: nothing was enrolled."
    return None


def run_enrolment(photos: list[Photo], name: str, point: str, status) -> dict:
    steps: dict[str, float] = {}
    check_server(status, steps)
    client = session_client(point)

    def enrol() -> dict:
        status.update(label=f"Encrypting the template of {len(photos)} photo(s) and storing it on the server…")
        return client.enrol([photo.encoding for photo in photos], name, replace=True)

    record, _ = with_keys(client, status, steps, enrol)
    return {**record, "point": point}


def run_verification(photo: Photo, enrolled: dict, level: str | None, status) -> CompareResult:
    steps: dict[str, float] = {}
    check_server(status, steps)
    client = session_client(enrolled["point"])
    client.level = level  # the probe carries it (one of the head's `offered_levels`)

    def verify() -> CompareResult:
        status.update(label=f"Encrypting the photo and comparing it with {enrolled['name']}'s template under FHE…")
        return client.verify(photo.encoding, enrolled["name"])

    result, _ = with_keys(client, status, steps, verify)
    return result


def enrol_and_verify(note_column) -> None:
    note_column.caption(
        f"Several photos of one person make one template (their embeddings are averaged here, then encrypted). "
        f"{FORMATS_TEXT}; up to {MAX_FILE_BYTES / MB:.0f} MB each."
    )
    inputs, controls = st.columns([4, 2])
    sources = enrolment_sources(inputs)
    with controls:
        name = st.text_input("Name", value="me", max_chars=64).strip()
        point = st.selectbox("Encrypted head", POINTS, format_func=point_label)
        pressed = st.button("Enrol (encrypted)", type="primary")
    if len(sources) > MAX_ENROL_PHOTOS:
        photos: list[Photo] = []
        problem = f"{len(sources)} photos chosen: an enrolment takes 1 to {MAX_ENROL_PHOTOS}. Nothing was enrolled."
        st.error(problem)
    else:
        with st.spinner(f"Finding the face in {len(sources)} photo(s)…"):
            photos = [read_photo(label, hashlib.sha256(data).hexdigest(), data) for label, data in sources]
        for start in range(0, len(photos), ENROL_COLUMNS):
            for cell, photo in zip(st.columns(ENROL_COLUMNS), photos[start : start + ENROL_COLUMNS], strict=False):
                show_enrolment_photo(cell, photo)
        problem = enrolment_problem(photos) if photos else "Choose photos of one person first."
    if pressed:
        if problem or not name:
            st.warning(problem or "Give the person a name first.")
        else:
            status = st.status(f"Enrolling {name}…", expanded=True)
            try:
                st.session_state["enrolment"] = run_enrolment(photos, name, point, status)
            except (PrivfaceError, RuntimeError) as err:
                status.update(label="Stopped: nothing was enrolled", state="error", expanded=False)
                st.error(f"The enrolment failed: {err}")
            else:
                status.update(label=f"Enrolled {name}", state="complete", expanded=False)

    st.markdown("#### Verify a photo against the enrolled template")
    enrolled = st.session_state.get("enrolment")
    if not enrolled:
        st.caption("Enrol someone above first.")
        return
    st.success(
        f"Enrolled **{enrolled['name']}** from {enrolled['photos']} photo(s) on the {enrolled['point']} head: the "
        "encrypted template is stored on the server until this session ends.",
        icon=":material/badge:",
    )
    probe_column, verify_controls = st.columns([2, 4])
    probe = photo_input(probe_column, 3, "Photo to verify")
    if probe is not None:
        show_preview(probe_column, probe, 3)
    with verify_controls:
        level = choose_level(enrolled["point"])
        verify_pressed = st.button(f"Verify against {enrolled['name']} (encrypted)", type="primary")
    if not verify_pressed:
        return
    if probe is None or probe.error:
        st.warning("Choose a photo with a face to verify first.")
        return
    status = st.status(f"Verifying against {enrolled['name']}…", expanded=True)
    try:
        result = run_verification(probe, enrolled, level, status)
    except UnknownTemplateError:
        status.update(label="Stopped: nothing enrolled on the server", state="error", expanded=False)
        st.error(
            f"The server no longer holds {enrolled['name']}'s template (it went with this session's keys): enrol again."
        )
        return
    except (PrivfaceError, RuntimeError) as err:
        status.update(label="Stopped: the encrypted verification failed", state="error", expanded=False)
        st.error(f"The encrypted verification failed: {err}")
        return
    status.update(label=f"Verified in {result.timings['total_s']:.1f} s", state="complete", expanded=False)
    if result.same:
        st.success(SAME, icon=":material/how_to_reg:")
    else:
        st.info(DIFFERENT, icon=":material/group:")
    st.caption(
        (f"Security level {level}: {describe(enrolled['point'], level, enrolled['photos'])}. " if level else "")
        + f"Against {enrolled['name']}'s template ({enrolled['photos']} photo(s)); decrypted here. The server's FHE "
        f"computation took {result.timings['server_fhe_s']:.2f} s."
    )


def main() -> None:
    st.set_page_config(page_title="privface — encrypted face verification", layout="wide")
    st.header("privface: encrypted face verification")
    where = mode()
    if not settings().url:
        embedded_server()  # starts it in the background on the first page of the app process
    st.markdown(
        "Two photos become two face embeddings, each encrypted with a key that only this session holds. "
        "A server compares the encrypted embeddings under fully homomorphic encryption and sends back an "
        "encrypted yes/no, which only this session can decrypt."
    )
    # The first screen (1366x768) shows the photos and the button; how it works is one click away, except
    # on a hosted demo, whose privacy text (photos go to the host) is shown before anything is chosen.
    if where == "space":
        st.markdown(privacy_text(where))
    with st.expander("How it works: what stays here, what the server sees", expanded=False):
        intro, diagram = st.columns([3, 2])
        if where != "space":
            intro.markdown(privacy_text(where))
        app_label = "this app (on the host's machine)" if where == "space" else "this app (on your machine)"
        diagram.graphviz_chart(FLOW % app_label)

    task_column, source_column, choice_column = st.columns([3, 2, 5])
    task = task_column.segmented_control("What to do", [COMPARE, ENROL], default=COMPARE, required=True, key="task")
    if task == ENROL:
        enrol_and_verify(choice_column)
        return
    source = source_column.radio("Photos", ["Examples", "Your photos"], horizontal=True)
    if source == "Examples":
        pair = EXAMPLES[choice_column.selectbox("Example pair", list(EXAMPLES))]
        *columns, controls = st.columns([2, 2, 2])
        photos = [example_photo(name) for name in pair]
    else:
        choice_column.caption(
            f"{FORMATS_TEXT}; up to {MAX_FILE_BYTES / MB:.0f} MB and {MAX_PIXELS / 1e6:.0f} megapixels (photos over "
            f"{WORK_PIXELS / 1e6:.0f} MP are downscaled), each side at least {MIN_SIDE} px."
        )
        *columns, controls = st.columns([2, 2, 2])
        photos = [photo_input(column, n) for n, column in enumerate(columns, start=1)]
    for number, (column, photo) in enumerate(zip(columns, photos, strict=True), start=1):
        show_preview(column, photo, number)

    with controls:  # beside the photos, so the button is on the first screen
        point = st.selectbox("Encrypted head", POINTS, format_func=point_label)
        level = choose_level(point)
        show_clear = st.checkbox("Also show the clear (not private) distance")
        pressed = st.button("Compare (encrypted)", type="primary")
    if not pressed:
        return
    if any(p is None for p in photos):
        st.warning("Choose two photos first.")
        return
    if any(p.error for p in photos):
        st.warning("Replace the photo marked above first: no comparison was made.")
        return
    verdict_slot = st.empty()
    number = st.session_state["comparisons"] = st.session_state.get("comparisons", 0) + 1
    status = st.status(f"Comparison {number}…", expanded=True)
    try:
        outcome = run_comparison(photos, point, level, status)
    except ServiceError as err:
        status.update(label="Stopped: the verification server is not available", state="error", expanded=False)
        st.error(f"The verification server is not available: {err}")
        return
    except (PrivfaceError, RuntimeError) as err:
        status.update(label="Stopped: the encrypted comparison failed", state="error", expanded=False)
        st.error(f"The encrypted comparison failed: {err}")
        return
    took = sum(outcome.steps.values())
    status.update(label=f"Comparison {number} done in {took:.1f} s", state="complete", expanded=False)
    show_result(outcome, photos, show_clear, verdict_slot)


main()
