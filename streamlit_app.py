"""privface: compare two photos; the comparison itself runs under fully homomorphic encryption.

    streamlit run streamlit_app.py

Each photo becomes an embedding on this (client) side, is quantised and encrypted on its own;
the server part (`FHEServer`, in this process for now) compares the two ciphertexts and returns an
encrypted bit that only this session's secret key can decrypt.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from client_encoder import FaceEncoder, InvalidImageError, NoFaceError, distance, load_image
from fhe_head.client import FHEClient
from fhe_head.errors import ArtifactError
from fhe_head.server import FHEServer

EXAMPLES_DIR = Path(__file__).parent / "tests" / "data"
EXAMPLES = {
    "Astronaut vs cameraman (different people)": ("astronaut.jpg", "cameraman.jpg"),
    "Astronaut vs her mirror image (same person)": ("astronaut.jpg", "astronaut.jpg:mirror"),
}


@st.cache_resource
def get_encoder() -> FaceEncoder:
    return FaceEncoder()


@st.cache_resource
def get_server() -> FHEServer:
    return FHEServer("accurate")


def get_client() -> FHEClient:
    """One key pair per browser session, made on first use."""
    if "fhe_client" not in st.session_state:
        client = FHEClient("accurate", encoder_sha256=get_encoder().model_sha256)
        start = time.perf_counter()
        client.generate_keys()
        st.session_state.keygen_s = time.perf_counter() - start
        st.session_state.evaluation_keys = client.evaluation_keys()
        st.session_state.fhe_client = client
    return st.session_state.fhe_client


def example_image(name: str) -> np.ndarray:
    file, _, variant = name.partition(":")
    pixels = load_image(EXAMPLES_DIR / file)
    return pixels[:, ::-1].copy() if variant == "mirror" else pixels


def with_box(pixels: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    image = Image.fromarray(pixels)
    ImageDraw.Draw(image).rectangle(box, outline=(0, 255, 0), width=max(2, image.width // 150))
    return image


def hex_preview(data: bytes, n: int = 24) -> str:
    return data[:n].hex(" ") + " …"


def main() -> None:
    st.set_page_config(page_title="privface — encrypted face verification", layout="wide")
    st.title("privface: encrypted face verification")
    st.caption(
        "The server compares two encrypted face embeddings and returns an encrypted yes/no. "
        "It never sees a face, an embedding, a score or the answer."
    )
    source = st.radio("Photos", ["Examples", "Upload"], horizontal=True)
    if source == "Examples":
        pair = EXAMPLES[st.selectbox("Example pair", list(EXAMPLES))]
        inputs = [example_image(name) for name in pair]
    else:
        left, right = st.columns(2)
        uploads = [
            left.file_uploader("First photo", type=["jpg", "jpeg", "png", "webp"]),
            right.file_uploader("Second photo", type=["jpg", "jpeg", "png", "webp"]),
        ]
        inputs = [u.getvalue() if u else None for u in uploads]
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
            encodings.append((load_image(image), encoder.encode(image)))
        except InvalidImageError as err:
            st.error(f"Photo {number} could not be read: {err}")
            return
        except NoFaceError:
            st.error(f"No face found in photo {number}. Use a photo where the face is clearly visible.")
            return
    st.subheader("1. Faces found and aligned (on your device)")
    columns = st.columns(2)
    for column, (pixels, encoding) in zip(columns, encodings, strict=True):
        column.image(with_box(pixels, encoding.face.box), use_container_width=True)
        column.caption(f"{len(encoding.faces)} face(s); embedding in {sum(encoding.timings_ms.values()):.0f} ms")
        if encoding.note:
            column.info(encoding.note)

    try:
        client, server = get_client(), get_server()
    except ArtifactError as err:
        st.error(f"The encrypted comparison is not available: {err}")
        return
    st.subheader("2. Keys (once per session, on your device)")
    st.write(
        f"Key generation took {st.session_state.keygen_s:.1f} s. Evaluation keys for the server: "
        f"{len(st.session_state.evaluation_keys) / 1e6:.1f} MB (they cannot decrypt anything)."
    )
    st.subheader("3. Each embedding quantised and encrypted on its own")
    ciphertexts = []
    for number, (_, encoding) in enumerate(encodings, start=1):
        start = time.perf_counter()
        ciphertexts.append(client.encrypt(encoding.embedding))
        st.write(
            f"Photo {number}: {len(ciphertexts[-1]) / 1e3:.1f} KB in {1e3 * (time.perf_counter() - start):.0f} ms — "
            f"`{hex_preview(ciphertexts[-1])}`"
        )
    st.subheader("4. Server: FHE comparison")
    keys = server.load_evaluation_keys(st.session_state.evaluation_keys)
    result = server.run(ciphertexts[0], ciphertexts[1], keys)
    st.write(f"Server FHE time: {server.last_run_s:.2f} s. Encrypted result ({len(result) / 1e3:.1f} KB): ")
    st.code(hex_preview(result, 32))
    st.subheader("5. Decrypted on your device")
    if client.decrypt(result):
        st.success("Same person")
    else:
        st.warning("Different people")
    with st.expander("What the server saw"):
        st.write(
            "Two ciphertexts, the evaluation keys and the time the computation took. "
            "Not the photos, not the embeddings, not a distance or score, not the answer."
        )
    if show_clear:
        d = distance(encodings[0][1].embedding, encodings[1][1].embedding)
        st.info(f"Clear mode (NOT private): distance {d:.3f}, threshold {encoder.threshold:.3f}")


main()
