"""Hostile inputs through the real commands, as a user types them: each is refused or
skipped in one line naming the file, exit status 2, nothing else on stdout, no
traceback, no hang (a time limit per case), and the user's files unchanged.

The web page's request handling and the picture decoding are checked in-process."""

import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image
from test_bundle import edit_json, rezip
from test_caption import without_xla_notice

from helpers import app as web
from helpers import bundle, files, formats, images, keras_files, server
from helpers.paths import ROOT

SECONDS = 120  # per command: a hang fails the case instead of the whole run


def command(*args, env=None) -> subprocess.CompletedProcess:
    """`python -m helpers ...` as typed in a terminal (TensorFlow's log level unset)."""
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", *map(str, args)],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        cwd=ROOT,
        timeout=SECONDS,
        env=environment | (env or {}),
    )


def errors(result) -> list[str]:
    """The lines on stderr besides the sample model's note; never a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = without_xla_notice(result.stderr).splitlines()
    return [line for line in lines if not line.startswith("note:")]


def refused(result, *names) -> str:
    """Exit 2, nothing on stdout, one line on stderr naming each of `names`."""
    lines = errors(result)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert len(lines) == 1 and all(str(name) in lines[0] for name in names), lines
    return lines[0]


def sha256(paths) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def picture(path, size=(40, 30), colour=(200, 30, 30)):
    Image.new("RGB", size, colour).save(path)
    return path


# ---------------------------------------------------------------- caption command


def test_caption_only_bad_files_then_good_ones(tiny_bundle, tmp_path):
    """A first chunk of eight with no readable picture, each named with what it is;
    the later files are still captioned, a name that is not UTF-8 included."""
    folder, _ = tiny_bundle
    (tmp_path / "folder.jpg").mkdir()
    os.mkfifo(tmp_path / "fifo.jpg")
    (tmp_path / "empty.jpg").touch()
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    (tmp_path / "notes.jpg").write_text("not a picture")
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg")  # Latin-1 name
    with open(os.fsencode(odd), "wb") as file:
        file.write(b"not a picture either")
    bad = {
        "missing.jpg": "no such file",
        "folder.jpg": "is a directory",
        "fifo.jpg": "is not a regular file",
        "empty.jpg": "is empty",
        "zero.jpg": "is not a regular file",
        "loop.jpg": "cannot be read (Too many levels of symbolic links)",
        "notes.jpg": "not a readable image",
    }
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    Image.fromarray(grey).save(tmp_path / "grey8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    good = [tmp_path / "grey8.png", tmp_path / "grey16.png"]
    good_odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/good\xe9.png")
    shutil.copy(good[0], os.fsencode(good_odd))
    given = [tmp_path / name for name in bad] + [odd, "gone.jpg", *good, good_odd]
    before = sha256(good + [tmp_path / "notes.jpg"])
    result = command("helpers", "caption", *given, "--model", folder)
    lines = errors(result)
    assert result.returncode == 2 and len(lines) == len(bad) + 2, result.stderr
    for line, (name, what) in zip(lines, bad.items()):
        assert line.startswith(f"error: {tmp_path / name}: {what}"), line
    assert "caf\\udce9.jpg: not a readable image" in lines[len(bad)]
    assert lines[-1] == "error: gone.jpg: no such file"
    captions = result.stdout.splitlines()
    shown = good_odd.encode("utf-8", "backslashreplace").decode()  # good\udce9.png
    assert [c.split(": ")[0] for c in captions] == [str(good[0]), str(good[1]), shown]
    assert captions[0].split(": ")[1] == captions[1].split(": ")[1]  # same picture
    assert sha256(good + [tmp_path / "notes.jpg"]) == before


def test_attention_never_replaces_an_input_picture(tiny_bundle, tmp_path):
    photo = picture(tmp_path / "photo.png")
    before = sha256([photo])
    result = command(
        *("helpers", "caption", photo, "--model", tiny_bundle[0]),
        *("--attention", photo, "--force"),
    )
    assert "is one of the input pictures" in refused(result, photo)
    assert sha256([photo]) == before


def test_attention_refuses_an_existing_file(tiny_bundle, tmp_path):
    photo = picture(tmp_path / "photo.png")
    existing = tmp_path / "figure.png"
    existing.write_bytes(b"the user's own file")
    result = command(
        "helpers", "caption", photo, "--model", tiny_bundle[0], "--attention", existing
    )
    assert "already exists (--force replaces it)" in refused(result, existing)
    assert existing.read_bytes() == b"the user's own file"


def test_attention_needs_its_folder_and_force_replaces_a_figure(tiny_bundle, tmp_path):
    """Checked before the model loads (in-process: the same function as above)."""
    from helpers import caption

    huge = tmp_path / "huge.jpg"  # over the pixel limit, shrunk while decoding
    Image.new("RGB", (6000, 4400), (20, 120, 200)).save(huge, quality=50)
    assert 6000 * 4400 > images.MAX_PIXELS
    deep = tmp_path / "no" / "such" / "figure.png"
    args = caption.parse([str(huge), "--model", "b", "--attention", str(deep)])
    assert "does not exist" in caption.attention_problem(args)
    old = tmp_path / "figure.png"
    old.write_bytes(b"an old figure")
    argv = [str(huge), "--model", str(tiny_bundle[0]), "--attention", str(old)]
    assert caption.main(argv + ["--force"]) == 0
    with Image.open(old) as figure:
        assert figure.format == "PNG"
    assert not (tmp_path / "no").exists()


def test_attention_on_a_huge_picture_into_a_read_only_folder(tiny_bundle, tmp_path):
    """A JPEG over the pixel limit is captioned from its shrunk decoding, and so is its
    figure (reopening the file at full size crashed after the caption); a folder we
    cannot write into gets the figure's name, not a temporary file's."""
    huge = tmp_path / "huge.jpg"
    Image.new("RGB", (6000, 4400), (20, 120, 200)).save(huge, quality=50)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes anywhere, except in /sys
        locked = "/sys"
    target = os.path.join(locked, "figure.png")
    result = command(
        *("helpers", "caption", huge, "--model", tiny_bundle[0], "--attention", target)
    )
    assert result.returncode == 2 and result.stdout.startswith(f"{huge}: ")
    assert errors(result) == [f"error: {target}: cannot write (Permission denied)"]


# ---------------------------------------------------------------- image folders


def test_features_skip_what_is_not_a_picture(tiny_bundle, tmp_path):
    """A FIFO named *.jpg hung `helpers.features` forever; each is now left out with a
    note saying what it is, and the other pictures are encoded."""
    data = tmp_path / "data"
    shutil.copytree(tiny_bundle[1].root, data)
    folder = data / "Flicker8k_Dataset"
    names = sorted(p.name for p in folder.iterdir())[:5]
    for name in names:
        (folder / name).unlink()
    os.mkfifo(folder / names[0])
    (folder / names[1]).mkdir()
    (folder / names[2]).touch()
    (folder / names[3]).symlink_to("/dev/zero")
    (folder / names[4]).symlink_to(folder / names[4])
    result = command(
        *("helpers.features", "--data", data, "--out", tmp_path / "features"),
        *("--weights", "none", "--image-size", 32, "--batch-size", 4),
    )
    assert result.returncode == 0, result.stderr
    left_out = next(line for line in result.stderr.splitlines() if "left out" in line)
    for name, what in zip(
        names,
        ["is not a regular file", "is a directory", "is empty"]
        + ["is not a regular file", "cannot be read (Too many levels of symbolic"],
    ):
        assert f"{folder / name}: {what}" in left_out
    assert "0 skipped" in result.stdout


# ---------------------------------------------------------------- bundles


def test_a_bundle_needing_imagenet_weights_never_downloads(tiny_bundle, tmp_path):
    folder = shutil.copytree(tiny_bundle[0], tmp_path / "bundle")
    edit_json(folder, "bundle.json", lambda m: m["encoder"].update(weights="imagenet"))
    photo = picture(tmp_path / "photo.png")
    keras_home = {"KERAS_HOME": str(tmp_path / "keras")}
    result = command("helpers", "caption", photo, "--model", folder, env=keras_home)
    line = refused(result, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert "a bundle never downloads" in line and "Downloading" not in result.stderr
    assert not (tmp_path / "keras" / "models").exists()


def test_a_decoder_asking_for_a_huge_vocabulary_is_refused_before_keras(
    tiny_bundle, tmp_path
):
    folder = shutil.copytree(tiny_bundle[0], tmp_path / "bundle")

    def huge(members):
        config = json.loads(members["config.json"])
        config["config"]["vocabulary_size"] = 1_000_000
        members["config.json"] = json.dumps(config).encode()

    rezip(folder, "attention.keras", huge)
    result = command("helpers", "caption", picture(tmp_path / "p.png"), "--model", folder)
    refused(result, folder / "attention.keras", "vocabulary_size = 1000000 is outside")


# ---------------------------------------------------------------- caption files


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("captions.txt", None, "captions.txt: is a directory"),
        ("captions.txt", b"image,caption\na.jpg,a d\0g\n", "captions.txt:2: a NUL byte"),
        (
            "Flickr8k.token.txt",
            b"a.jpg#0\t" + b"word " * 20_000,
            "Flickr8k.token.txt:1: a line over 65,536 bytes",
        ),
    ],
)
def test_caption_files_that_are_not_captions(tmp_path, name, content, message):
    data = tmp_path / "data"
    data.mkdir()
    if content is None:
        (data / name).mkdir()
    else:
        (data / name).write_bytes(content)
    refused(command("helpers.data", "inspect", data), data / message)
    assert content is None or (data / name).read_bytes() == content


# ---------------------------------------------------------------- the web page


def test_serve_refuses_a_taken_port_before_the_model_loads(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = command("helpers", "serve", "--model", tmp_path, "--port", port)
    refused(result, f"127.0.0.1:{port}: cannot listen (Address already in use)")


@pytest.mark.parametrize("size", ["nan", "inf", "-1", "0", "101"])
def test_serve_refuses_each_upload_limit_outside_its_range(size, capsys):
    """Refused before the model loads (`no-bundle` is never opened)."""
    assert web.main(["--model", "no-bundle", "--max-upload-mb", size]) == 2
    assert capsys.readouterr().err.startswith(f"error: --max-upload-mb {float(size)}")


@pytest.fixture(scope="module")
def page(tiny_bundle):
    from helpers.caption import Captioner

    return web.create_app([Captioner(tiny_bundle[0])], max_upload_mb=0.05)


def test_the_api_answers_json_for_unknown_paths_and_methods(page):
    client = page.test_client()
    missing = client.post("/api/nothing")
    assert missing.status_code == 404 and "error" in missing.get_json()
    wrong = client.get("/api/caption")
    assert wrong.status_code == 405 and "error" in wrong.get_json()
    assert client.get("/nothing").status_code == 404


def test_a_chunked_upload_over_the_limit_is_called_too_large(page):
    body = b"--x\r\nContent-Disposition: form-data; name=image; filename=a.jpg\r\n\r\n"
    answer = page.test_client().post(
        "/api/caption",
        input_stream=io.BytesIO(body + b"\0" * 200_000 + b"\r\n--x--\r\n"),
        headers={
            "Transfer-Encoding": "chunked",
            "Content-Type": "multipart/form-data; boundary=x",
        },
        environ_overrides={"wsgi.input_terminated": True},  # as the server sets it
    )
    assert answer.status_code == 413
    assert answer.get_json()["error"] == (
        "The upload is larger than the 0.05 MB upload limit."
    )


def test_slow_clients_get_a_header_deadline_and_a_bounded_number_of_threads(
    monkeypatch,
):
    """2,000 slow connections held 2,020 threads; now at most MAX_CONNECTIONS are
    served at once, and one that trickles its headers is closed at the deadline."""
    monkeypatch.setattr(server, "HEADER_SECONDS", 1.0)
    monkeypatch.setattr(server, "MAX_CONNECTIONS", 4)
    listening = server.listen("127.0.0.1", 0)

    def hello(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    running = server.serve(hello, listening)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    port = listening.getsockname()[1]
    try:
        threads = threading.active_count()
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
        start = time.monotonic()
        for _ in range(3):  # a byte now and then: each read alone is quick
            for connection in slow:
                connection.sendall(b"G")
            time.sleep(0.3)
        assert threading.active_count() <= threads + 4
        for connection in slow[:4]:  # the first four were served, then cut off
            connection.settimeout(5)
            assert connection.recv(100) == b""
        assert time.monotonic() - start < 4
        for connection in slow:
            connection.close()
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        client.request("GET", "/")
        assert client.getresponse().read() == b"ok"  # still serving
    finally:
        running.shutdown()
        listening.close()


# ---------------------------------------------------------------- pictures


def brightness(source) -> float:
    return float(images.load_image(source, 32).mean())


@pytest.mark.parametrize(
    "mode", ["I;16", "LA", "P-transparency", "CMYK", "1", "RGBA", "L"]
)
def test_unusual_modes_decode_like_the_8_bit_picture(mode, tmp_path):
    """A 16-bit grey PNG was clipped (mean brightness 244 instead of 85)."""
    grey = np.tile(np.linspace(0, 170, 64).astype(np.uint8), (64, 1))
    reference = Image.fromarray(grey)
    if mode == "I;16":
        image = Image.fromarray(grey.astype(np.uint16) * 257)
    elif mode == "P-transparency":
        image = reference.convert("P")
        image.info["transparency"] = 255  # a colour the picture does not use
    elif mode == "1":
        reference = Image.fromarray(np.where(grey > 85, 255, 0).astype(np.uint8))
        image = reference.convert("1")
    else:
        image = reference.convert(mode)
    path = tmp_path / ("p.jpg" if mode == "CMYK" else "p.png")
    image.save(path)
    reference.save(tmp_path / "reference.png")
    assert abs(brightness(path) - brightness(tmp_path / "reference.png")) < 2


def test_a_mode_i_picture_is_scaled_like_16_bit_grey():
    """Pillow before 10 opens a 16-bit grey PNG in mode I (no format of ours saves it)."""
    grey = np.tile(np.linspace(0, 170, 64).astype(np.uint8), (64, 1))
    image = Image.fromarray(grey.astype(np.int32) * 257, "I")
    shrunk = images._shrunk(image, None)
    assert shrunk.mode == "L" and abs(np.asarray(shrunk).mean() - grey.mean()) < 1


# ---------------------------------------------------------------- the limits table


@pytest.mark.parametrize(
    "read, limit",
    [
        (formats.read_text, "MAX_TEXT_BYTES"),
        (files.read_json, "MAX_JSON_BYTES"),
        (bundle._sha256, "MAX_PART_BYTES"),
        (lambda path: bundle.read_manifest(path.parent), "MAX_MANIFEST_BYTES"),
    ],
)
def test_a_file_a_byte_over_its_limit_is_refused_unread(read, limit, tmp_path):
    """Sparse files: the size is checked before a byte is read."""
    size = getattr(files, limit, None) or getattr(bundle, limit)
    path = tmp_path / bundle.MANIFEST
    with open(path, "wb") as file:
        file.truncate(size + 1)
    with pytest.raises(ValueError, match=f"{size + 1:,} bytes, over the {size:,} limit"):
        read(path)


def test_every_limit_in_the_design_table_names_a_test_that_exists():
    """docs/design.md's table of limits: each row's value is the code's, and its test
    is a test function of this suite."""
    text = (ROOT / "docs" / "design.md").read_text()
    table = text[text.index("| limit |") :].split("\n\n")[0].splitlines()[2:]
    values = {
        "pixels": f"{images.MAX_PIXELS:,}",
        "bytes of a caption file": f"{files.MAX_TEXT_BYTES // 2**20} MiB",
        "bytes of a JSON file": f"{files.MAX_JSON_BYTES // 2**20} MiB",
        "bytes of a bundle file": f"{bundle.MAX_PART_BYTES // 2**20} MiB",
        "bytes of `bundle.json`": f"{bundle.MAX_MANIFEST_BYTES // 2**20} MiB",
        "line of": f"{formats.MAX_LINE_BYTES:,}",
        "archive members": f"{len(keras_files.KERAS_MEMBERS)}: ",
        "vocabulary": f"{keras_files.DECODER_LIMITS['vocabulary_size'][1]:,}",
        "layer sizes": f"units {keras_files.DECODER_LIMITS['units'][1]:,}",
        "upload size": f"at most {web.MAX_UPLOAD_MB}",
        "header deadline": f"{server.HEADER_SECONDS} s",
        "connections served": str(server.MAX_CONNECTIONS),
        "silent": f"{server.CONNECTION_TIMEOUT_SECONDS} s",
    }
    tests = {path.stem: path.read_text() for path in (ROOT / "tests").glob("test_*.py")}
    for key, value in values.items():
        row = next(r for r in table if key in r.split("|")[1])
        assert value in row, (key, value, row)
    for row in table:
        module, test = row.split("|")[-2].strip().strip("`").split("::")
        assert f"def {test}(" in tests[module], row
