"""privface: compare two photos; the comparison itself runs under fully homomorphic encryption.

    streamlit run streamlit_app.py

This page is the client: each photo becomes an embedding here, is quantised and encrypted on its
own, and goes to the verification server (`python -m fhe_head.service`), which compares the two
ciphertexts and returns an encrypted bit that only this browser session's secret key decrypts.
By default the app starts the server itself on loopback; set PRIVFACE_URL to use a remote one.
"""

from __future__ import annotations

import atexit
import os
import tempfile
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from client_encoder import FaceEncoder, distance, load_image
from fhe_head.artifacts import POINTS
from privface.client import VerificationClient
from privface.errors import InvalidImageError, NoFaceError, PrivfaceError, ServiceError
from privface.resources import EXAMPLES_DIR

# Bundled photos (scikit-image's samples: NASA public domain / CC0). A mirror image is a fair
# "same person, different photo" for the encoder: the face is re-detected and re-aligned.
EXAMPLES = {
    "Astronaut vs cameraman (different people)": ("astronaut.jpg", "cameraman.jpg"),
    "Astronaut vs her mirror image (same person)": ("astronaut.jpg", "astronaut.jpg:mirror"),
    "Cameraman vs his mirror image (same person)": ("cameraman.jpg", "cameraman.jpg:mirror"),
}
POINT_LABELS = {
    "accurate": "accurate (64 dims; about 99% on LFW; ~2 s on 2 cores)",
    "fast": "fast (10 dims; about 96% on LFW; ~0.2 s)",
}
SAME, DIFFERENT = "Same person", "Different people"


@st.cache_resource
def get_encoder() -> FaceEncoder:
    return FaceEncoder()


@st.cache_resource
def server_url() -> str:
    """PRIVFACE_URL, or a server started once per app process on loopback."""
    if os.environ.get("PRIVFACE_URL"):
        return os.environ["PRIVFACE_URL"]
    from privface.local_server import LocalServer

    server = LocalServer(Path(tempfile.mkdtemp(prefix="privface-server-"))).start()
    atexit.register(server.stop)
    return server.url


def get_client(point: str) -> VerificationClient:
    """One key pair per browser session and point, kept in memory only (no key directory)."""
    clients = st.session_state.setdefault("clients", {})
    if point not in clients:
        clients[point] = VerificationClient(server_url(), point, key_dir=None, encoder=get_encoder())
    return clients[point]


def example_image(name: str) -> np.ndarray:
    file, _, variant = name.partition(":")
    pixels = load_image(EXAMPLES_DIR / file)
    return pixels[:, ::-1].copy() if variant == "mirror" else pixels


def with_box(pixels: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    image = Image.fromarray(pixels)
    ImageDraw.Draw(image).rectangle(box, outline=(0, 255, 0), width=max(2, image.width // 150))
    return image


def hex_preview(data: bytes, n: int = 24) -> str:
    """Bytes from the middle: both ends are framing (our header, concrete's serialization)."""
    middle = len(data) // 2
    return "… " + data[middle : middle + n].hex(" ") + " …"


def photo_input(column, number: int):
    """Upload or camera for one side; returns bytes or None."""
    mode = column.radio(f"Photo {number} from", ["Upload", "Camera"], horizontal=True, key=f"mode{number}")
    if mode == "Camera":
        shot = column.camera_input(f"Photo {number}", key=f"camera{number}")
        return shot.getvalue() if shot else None
    upload = column.file_uploader(f"Photo {number}", type=["jpg", "jpeg", "png", "webp"], key=f"upload{number}")
    return upload.getvalue() if upload else None


def connect(client: VerificationClient) -> None:
    if client.key_id:
        return
    bar = st.progress(0.0, text="Generating keys on your device…")

    def uploaded(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Uploading evaluation keys: {done / 1e6:.0f} / {total / 1e6:.0f} MB")

    client.connect(uploaded)
    bar.empty()


def main() -> None:
    st.set_page_config(page_title="privface — encrypted face verification", layout="wide")
    st.title("privface: encrypted face verification")
    st.caption(
        "Your photos stay here. The server compares two encrypted face embeddings and returns an encrypted "
        "yes/no: it never sees a face, an embedding, a score or the answer."
    )
    source = st.radio("Photos", ["Examples", "Your photos"], horizontal=True)
    if source == "Examples":
        pair = EXAMPLES[st.selectbox("Example pair", list(EXAMPLES))]
        inputs = [example_image(name) for name in pair]
    else:
        columns = st.columns(2)
        inputs = [photo_input(column, n) for n, column in enumerate(columns, start=1)]
    point = st.selectbox("Encrypted head", POINTS, format_func=POINT_LABELS.get)
    show_clear = st.checkbox("Also show the clear (not private) distance")
    if not st.button("Compare (encrypted)", type="primary"):
        return
    if any(i is None for i in inputs):
        st.warning("Choose two photos first.")
        return

    encoder = get_encoder()
    encodings = []
    for number, image in enumerate(inputs, start=1):
        try:
            encoding = encoder.encode(image)
            encodings.append((encoding.located.pixels, encoding))
        except InvalidImageError as err:
            st.error(f"Photo {number} could not be read: {err}")
            return
        except NoFaceError:
            st.error(f"No face found in photo {number}. Use a photo where the face is clearly visible.")
            return
        except PrivfaceError as err:
            st.error(f"Photo {number}: {err}")
            return
    st.subheader("1. Faces found and aligned (on your device)")
    columns = st.columns(4)
    for number, (pixels, encoding) in enumerate(encodings):
        columns[2 * number].image(with_box(pixels, encoding.face.box), use_container_width=True)
        columns[2 * number + 1].image(encoding.located.chip, caption="aligned 150×150", width=150)
        took_ms = sum(encoding.timings_ms.values())
        columns[2 * number].caption(f"Photo {number + 1}: {len(encoding.faces)} face(s); embedding in {took_ms:.0f} ms")
        if encoding.note:
            columns[2 * number].info(encoding.note)

    try:
        client = get_client(point)
        first_time = client.key_id is None
        connect(client)
        st.subheader("2. Keys (once per session, on your device)")
        keygen = client.timings.get("keygen_s", 0.0)
        upload = client.timings.get("key_upload_s", 0.0)
        size = client.evaluation_key_bytes / 1e6
        st.write(
            f"Secret key: stays in this session. Evaluation keys: {size:.1f} MB, uploaded once "
            f"(key id `{client.key_id[:12]}…`; they let the server compute, not decrypt)."
            + (f" Generated in {keygen:.1f} s, uploaded in {upload:.1f} s." if first_time else " Reused.")
        )
        st.subheader("3. Each embedding quantised and encrypted on its own")
        encrypted = [client.encrypt(encoding) for _, encoding in encodings]
        for number, item in enumerate(encrypted, start=1):
            st.write(
                f"Photo {number}: {len(item.ciphertext) / 1e3:.1f} KB in {1e3 * item.encrypt_s:.0f} ms"
                f" — `{hex_preview(item.ciphertext)}`"
            )
        st.subheader("4. Sent to the server, compared under FHE")
        answer = client.send_pair(encrypted[0], encrypted[1])
        st.write(
            f"Server FHE time: {answer.server_fhe_s:.2f} s (round trip {answer.round_trip_s:.2f} s, "
            f"server at {client.url})."
        )
        st.write(f"Encrypted result returned ({len(answer.result) / 1e3:.1f} KB):")
        st.code(hex_preview(answer.result, 32))
        st.subheader("5. Decrypted on your device")
        same = client.decrypt(answer)
    except ServiceError as err:
        st.error(f"The verification server is not available: {err}")
        return
    except PrivfaceError as err:
        st.error(f"The encrypted comparison failed: {err}")
        return
    if same:
        st.success(SAME)
    else:
        st.warning(DIFFERENT)
    with st.expander("What the server saw", expanded=True):
        st.write(
            f"Two ciphertexts ({len(encrypted[0].ciphertext) / 1e3:.1f} KB each), your evaluation keys ({size:.1f} MB) "
            "and how long the computation took. Not the photos, not the embeddings, not a distance or "
            "score, not the answer: the bit it returned is encrypted under your key."
        )
    if show_clear:
        d = distance(encodings[0][1].embedding, encodings[1][1].embedding)
        st.info(f"Clear mode (NOT private): distance {d:.3f}, threshold {encoder.threshold:.3f}")


main()
