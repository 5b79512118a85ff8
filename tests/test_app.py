"""The web page: Flask test client for every path, then a real headless Chromium."""

import io
import threading

import pytest
from PIL import Image
from werkzeug.serving import make_server

from helpers.app import create_app
from helpers.caption import Captioner, captioners


@pytest.fixture(scope="module")
def app(tiny_bundle):
    return create_app([Captioner(tiny_bundle[0])], max_upload_mb=0.05)


def jpeg(size=(60, 40)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 20, 20)).save(buffer, format="JPEG")
    return buffer.getvalue()


def post(client, body, name="photo.jpg", path="/", decoding="3"):
    return client.post(
        path,
        data={"image": (io.BytesIO(body), name), "decoding": decoding},
        content_type="multipart/form-data",
    )


def test_form_caption_and_attention(app):
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200 and b'type="file"' in page.data
    assert (
        b'id="note"' in page.data
        and b"only knows pictures of coloured shapes" in page.data
    )
    answer = post(client, jpeg())
    assert answer.status_code == 200
    assert b'id="caption"' in answer.data and b"data:image/png;base64," in answer.data


def test_json_api(app):
    answer = post(app.test_client(), jpeg(), path="/api/caption", decoding="1")
    content = answer.get_json()
    assert answer.status_code == 200 and content["image"] == "photo.jpg"
    assert len(content["attention"]) == len(content["words"])


def eps_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), "red").save(buffer, format="EPS")
    return buffer.getvalue()


def test_other_formats_are_refused_without_starting_programs(app, monkeypatch):
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", None)  # calling it would fail
    answer = post(app.test_client(), eps_bytes(), name="figure.eps")
    assert answer.status_code == 400
    assert b"figure.eps is not an image we can read: not a supported image" in answer.data
    assert b"object at 0x" not in answer.data


class Slow:
    """A captioner that holds its turn until released."""

    def __init__(self, captioner):
        self.inner, self.started, self.finish = (
            captioner,
            threading.Event(),
            threading.Event(),
        )

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def caption_pictures(self, *args):
        self.started.set()
        self.finish.wait(30)
        return self.inner.caption_pictures(*args)


def test_uploads_beyond_the_concurrency_bound_wait_then_get_busy(
    tiny_bundle, monkeypatch
):
    from helpers import app as web

    monkeypatch.setattr(web, "WAIT_SECONDS", 0.2)
    slow = Slow(Captioner(tiny_bundle[0]))
    busy_app = create_app([slow], concurrent=1)
    first = threading.Thread(target=post, args=(busy_app.test_client(), jpeg()))
    first.start()
    assert slow.started.wait(30)
    answer = post(busy_app.test_client(), jpeg(), path="/api/caption")
    assert answer.status_code == 503 and "busy" in answer.get_json()["error"]
    slow.finish.set()
    first.join(30)
    assert post(busy_app.test_client(), jpeg()).status_code == 200


def test_non_images_and_big_uploads_are_refused(app):
    client = app.test_client()
    answer = post(client, b"%PDF-1.4 not an image", name="doc.pdf")
    assert answer.status_code == 400 and b"doc.pdf is not an image" in answer.data
    big = post(client, jpeg() + b"\0" * 60_000)
    assert big.status_code == 413 and b"upload limit" in big.data
    assert post(client, jpeg(), decoding="7").status_code == 400


def test_serves_on_loopback_by_default():
    from helpers.app import build_parser

    assert build_parser().parse_args(["--model", "bundle"]).host == "127.0.0.1"


def test_upload_in_a_real_browser(app, browser, tmp_path):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    (tmp_path / "photo.jpg").write_bytes(jpeg())
    (tmp_path / "notes.txt").write_text("hello")
    try:
        page = browser.new_page()
        page.goto(url)
        page.set_input_files("input[type=file]", str(tmp_path / "photo.jpg"))
        page.select_option("select[name=decoding]", "1")
        page.click("button[type=submit]")
        caption = page.wait_for_selector("#caption", timeout=60_000)
        assert caption.inner_text().strip()
        assert page.eval_on_selector("#attention", "img => img.naturalWidth") > 100
        page.goto(url)
        page.set_input_files("input[type=file]", str(tmp_path / "notes.txt"))
        page.click("button[type=submit]")
        assert "not an image" in page.wait_for_selector("#error").inner_text()
    finally:
        server.shutdown()


def test_the_bundles_beam_width_is_the_default(tiny_bundle):
    import dataclasses

    captioner = Captioner(tiny_bundle[0])
    config = dataclasses.replace(captioner.bundle.config, beam_width=4)
    captioner.bundle = dataclasses.replace(captioner.bundle, config=config)
    client = create_app([captioner]).test_client()
    assert b'<option value="4" selected>beam search, k = 4' in client.get("/").data
    answer = post(client, jpeg(), path="/api/caption", decoding="2")
    assert answer.status_code == 400 and "[1, 3, 4, 5]" in answer.get_json()["error"]


def test_each_upload_picks_one_of_the_bundles_decoders(tiny_bundle, tmp_path):
    loaded = captioners(tiny_bundle[0])  # what `serve` offers by default
    assert [c.kind for c in loaded] == ["scst", "attention", "merge", "transformer"]
    assert all(c.encoder is loaded[0].encoder for c in loaded)  # built once
    client = create_app(loaded).test_client()
    page = client.get("/").get_data(as_text=True)
    assert '<option value="scst" selected>attention, self-critical' in page
    assert '<option value="merge">merge' in page
    assert '<option value="transformer">Transformer' in page
    (tmp_path / "p.jpg").write_bytes(jpeg())
    picture = loaded[0].load(tmp_path / "p.jpg")
    scores = {}
    for kind in ("scst", "attention", "merge", "transformer", None):  # None: default
        answer = client.post(
            "/api/caption",
            data={"image": (io.BytesIO(jpeg()), "p.jpg"), "decoding": "1"}
            | ({"model": kind} if kind else {}),
            content_type="multipart/form-data",
        )
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["model"] == (kind or "scst")
        scores[kind] = answer.get_json()["score"]
    for captioner in loaded:  # each answer came from the decoder it names
        direct = captioner.caption_pictures([picture], 1)[0]["score"]
        assert scores[captioner.kind] == pytest.approx(direct, rel=1e-5)
    assert scores[None] == scores["scst"]
    assert len({scores[c.kind] for c in loaded}) == 4
    answer = client.post(  # the result page keeps the choices made
        "/",
        data={"image": (io.BytesIO(jpeg()), "p.jpg"), "model": "merge", "decoding": "1"},
        content_type="multipart/form-data",
    )
    assert "merge, no attention decoder:" in answer.text
    assert 'id="picture"' in answer.text and 'id="attention"' not in answer.text
    assert '<option value="merge" selected>' in answer.text
    assert '<option value="1" selected>greedy' in answer.text
    assert answer.text.count(" selected>") == 2
    answer = client.post(  # the Transformer's cross-attention is drawn like the LSTM's
        "/",
        data={"image": (io.BytesIO(jpeg()), "p.jpg"), "model": "transformer"},
        content_type="multipart/form-data",
    )
    assert "Transformer decoder:" in answer.text and 'id="attention"' in answer.text
    answer = client.post(
        "/",
        data={"image": (io.BytesIO(jpeg()), "p.jpg"), "model": "resnet"},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 400
    assert "model must be one of [&#x27;scst&#x27;, &#x27;attention&#x27;" in answer.text
    only = create_app(captioners(tiny_bundle[0], ["attention"])).test_client()
    assert '<option value="scst"' not in only.get("/").get_data(as_text=True)


def test_refusals_of_the_api_are_json_and_say_which_limit(app, tiny_bundle):
    big = post(app.test_client(), jpeg() + b"\0" * 60_000, path="/api/caption")
    assert big.status_code == 413 and "upload limit" in big.get_json()["error"]
    roomy = create_app([Captioner(tiny_bundle[0])], max_upload_mb=2)
    parts = {f"f{i}": "x" for i in range(1500)}  # small, but too many parts for Werkzeug
    many = roomy.test_client().post(
        "/api/caption",
        data={"image": (io.BytesIO(jpeg()), "p.jpg"), **parts},
        content_type="multipart/form-data",
    )
    assert many.status_code == 413 and "form parts" in many.get_json()["error"]


def test_a_file_without_a_readable_name_is_still_captioned(app):
    answer = post(app.test_client(), jpeg(), name="", path="/api/caption")
    assert answer.status_code == 200 and answer.get_json()["image"] == "the uploaded file"


def test_a_silent_connection_is_closed():
    from helpers.server import CONNECTION_TIMEOUT_SECONDS, TimedHandler

    assert TimedHandler.timeout == CONNECTION_TIMEOUT_SECONDS <= 60
