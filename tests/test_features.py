"""Feature extraction: shapes, order, resume after SIGKILL, bad images, cache reuse, CLI."""

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib

import h5py
import numpy as np
import pytest
from PIL import Image

from helpers import cache, encoders, features, files, images, sample
from helpers.paths import ROOT

SMALL = 32  # VGG16 at 32x32 gives a 2x2 block5_conv3 grid: same code, much faster


def save(image, path, **options):
    image.save(path, **options)
    return path


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = sample.write_sample(tmp_path_factory.mktemp("data") / "s", 12, seed=3)
    return {p.name: p for p in sorted((folder / "Flicker8k_Dataset").iterdir())}


def test_vgg16_block5_conv3_is_196_by_512_float16(pictures, tmp_path):
    two = dict(list(pictures.items())[:2])
    index = features.extract(two, tmp_path, weights=None, batch_size=2, progress=False)
    array, loaded = cache.load_features(tmp_path)
    assert array.shape == (2, 196, 512) and array.dtype == np.float16
    assert (
        loaded == index
        and index["layer"] == "block5_conv3"
        and index["image_size"] == 224
    )
    assert (
        index["names"] == list(two) and index["weights"] == "random-he-normal(seed=1234)"
    )
    assert np.count_nonzero(array) > 0  # the random encoder does not output all zeros


def test_rows_follow_the_given_order(pictures, tmp_path):
    names = list(pictures)[:3]
    forward = features.extract(
        {n: pictures[n] for n in names},
        tmp_path / "a",
        weights=None,
        image_size=SMALL,
        batch_size=2,
        progress=False,
    )
    backward = features.extract(
        {n: pictures[n] for n in names[::-1]},
        tmp_path / "b",
        weights=None,
        image_size=SMALL,
        batch_size=2,
        progress=False,
    )
    a, b = (
        cache.load_features(tmp_path / "a")[0],
        cache.load_features(tmp_path / "b")[0],
    )
    assert forward["names"] == names and backward["names"] == names[::-1]
    # Batches of another composition may round differently (oneDNN) by a float16 step:
    # compare in float16 units, two steps relative plus a floor for values near zero.
    float16_step = float(np.finfo(np.float16).eps)
    for x, y in ((a[0], b[2]), (a[2], b[0])):
        np.testing.assert_allclose(x, y, rtol=2 * float16_step, atol=float16_step)
    assert not np.allclose(a[0], a[1])


def test_cache_is_reused_and_rebuilt_when_settings_change(
    pictures, tmp_path, monkeypatch
):
    subset = dict(list(pictures.items())[:2])

    def run(**kw):
        return features.extract(
            subset,
            tmp_path,
            weights=None,
            batch_size=2,
            progress=False,
            **kw,
        )

    run(image_size=SMALL)
    stamp = (tmp_path / cache.FEATURES).stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("a finished cache must not rebuild the encoder")

    with monkeypatch.context() as patch:
        patch.setattr(features, "build_encoder", fail)
        run(image_size=SMALL)
    assert (tmp_path / cache.FEATURES).stat().st_mtime_ns == stamp
    index = run(image_size=64)
    assert index["shape"] == [2, 16, 512]
    assert cache.load_features(tmp_path)[0].shape == (2, 16, 512)


@pytest.fixture
def finished_cache(pictures, tmp_path):
    """A finished cache of 6 pictures, and a function that extracts into its folder."""

    def extract(names, **options):
        return features.extract(
            {n: pictures[n] for n in names},
            tmp_path,
            **{"weights": None, "image_size": SMALL, "batch_size": 3} | options,
            progress=False,
        )

    names = list(pictures)[:6]
    return extract(names), extract, names


def test_a_quick_limited_run_or_another_batch_size_reuses_the_full_cache(
    finished_cache, tmp_path, monkeypatch
):
    index, extract, names = finished_cache
    stamp = (tmp_path / cache.FEATURES).stat().st_mtime_ns
    monkeypatch.setattr(features, "build_encoder", None)  # must not be needed
    assert extract(names[:2]) == index
    assert extract(names, batch_size=4) == index
    assert (tmp_path / cache.FEATURES).stat().st_mtime_ns == stamp


@pytest.mark.parametrize("damage", ["truncate", "reshape"])
def test_a_damaged_cache_is_refused_on_load_and_rebuilt_on_reuse(
    finished_cache, tmp_path, capsys, damage
):
    index, extract, names = finished_cache
    path = tmp_path / cache.FEATURES
    whole = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(whole[: len(whole) - 1000])
    else:
        np.save(path, np.zeros((6, 2, 512), np.float16))
    with pytest.raises(ValueError, match=r"features\.npy: "):
        cache.load_features(tmp_path)
    assert extract(names) == index
    assert "replacing the feature cache" in capsys.readouterr().err
    assert path.read_bytes() == whole


def test_an_invalid_index_is_rebuilt_on_reuse(finished_cache, tmp_path, capsys):
    index, extract, names = finished_cache
    (tmp_path / cache.INDEX).write_text('{"names": [')
    assert extract(names) == index
    assert "replacing the feature cache" in capsys.readouterr().err


def test_a_progress_file_of_another_version_starts_the_work_again(pictures, tmp_path):
    """A killed run's progress file without the keys we write (or not JSON) beside
    its partial array: the extraction starts over instead of failing."""
    two = dict(list(pictures.items())[:2])
    files.claim_folder(tmp_path)  # a folder our job wrote into before it was killed
    for progress in ('{"done": 1}', "not json"):
        (tmp_path / "features.npy.partial").write_bytes(b"half")
        (tmp_path / cache.PROGRESS).write_text(progress)
        (tmp_path / cache.INDEX).unlink(missing_ok=True)
        index = features.extract(
            two, tmp_path, weights=None, image_size=SMALL, progress=False
        )
        assert index["shape"][0] == 2 and cache.load_features(tmp_path)[0].any()


def test_a_corrupt_index_is_named(finished_cache, tmp_path):
    (tmp_path / cache.INDEX).write_text('{"names": [')
    with pytest.raises(ValueError, match=r"features\.json:1: not valid JSON"):
        cache.load_features(tmp_path)


def test_a_second_extraction_into_the_same_folder_stops_with_a_message(
    finished_cache, tmp_path
):
    import filelock

    index, extract, names = finished_cache
    with filelock.FileLock(tmp_path / cache.LOCK):  # held as another run would
        with pytest.raises(RuntimeError, match="another feature extraction"):
            extract(names[::-1])
    assert cache.load_features(tmp_path)[1] == index


def test_a_folder_of_other_files_is_refused(pictures, tmp_path):
    (tmp_path / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(ValueError, match="not written by this project"):
        features.extract(pictures, tmp_path, weights=None, image_size=SMALL)
    assert [p.name for p in tmp_path.iterdir()] == ["holiday.jpg"]


def bad_images(folder):
    folder.mkdir()
    rgb = Image.new("RGB", (120, 80), (200, 30, 30))
    good = save(rgb, folder / "good.jpg")
    data = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n")
    transparent = Image.new("RGBA", (60, 60), (0, 0, 255, 0))
    transparent.paste((0, 0, 255, 255), (0, 0, 30, 60))  # opaque blue left half
    save(transparent, folder / "alpha.png")
    save(Image.new("L", (50, 70), 128), folder / "gray.jpg")
    save(
        Image.new("CMYK", (40, 40), (0, 255, 255, 0)), folder / "cmyk.jpg"
    )  # red in CMYK
    tall = Image.new("RGB", (40, 100), (0, 200, 0))
    exif = tall.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees when shown
    save(tall, folder / "rotated.jpg", exif=exif)
    save(Image.new("1", (10000, 10000)), folder / "huge.png")  # 100 Mpixels, tiny file
    return folder


def test_each_bad_image_is_decoded_or_reported(tmp_path):
    folder = bad_images(tmp_path / "bad")
    decoded, failed = {}, {}
    for path in sorted(folder.iterdir()):
        try:
            decoded[path.name] = images.load_image(path, 64)
        except ValueError as error:
            failed[path.name] = str(error)
    assert sorted(failed) == ["empty.jpg", "huge.png", "text.jpg", "truncated.jpg"]
    assert "decompression bomb" in failed["huge.png"]
    assert all(
        image.shape == (64, 64, 3) and image.dtype == np.uint8
        for image in decoded.values()
    )
    alpha = decoded["alpha.png"]
    assert tuple(alpha[32, 5]) == (0, 0, 255) and tuple(alpha[32, 60]) == (255, 255, 255)
    assert np.all(decoded["gray.jpg"][..., 0] == decoded["gray.jpg"][..., 2])
    red, green, blue = decoded["cmyk.jpg"][32, 32].astype(int)
    assert red > 200 and green < 60 and blue < 60
    with Image.open(folder / "rotated.jpg") as raw:
        assert raw.size == (40, 100)
    rotated = images.load_image(folder / "rotated.jpg", 100)
    assert rotated.shape == (100, 100, 3)  # after exif_transpose the picture is 100x40


def png(path, width, height, colour=2, depth=8, chunks=()):
    """A blank PNG written row by row: a huge picture in a tiny file, cheaply.
    `colour` is PNG's colour type (2 RGB, 3 palette, 4 grey+alpha, 6 RGBA)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    compress = zlib.compressobj(9)
    row = b"\0" + bytes(channels * depth // 8 * width)  # filter byte + pixels
    data = b"".join(compress.compress(row) for _ in range(height)) + compress.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = b""
    for kind, content in ((b"IHDR", header), *chunks, (b"IDAT", data), (b"IEND", b"")):
        chunk = kind + content
        body += struct.pack(">I", len(content)) + chunk
        body += struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def blank_png(path, width, height):
    return png(path, width, height)


MEASURE = """
import resource, sys
from helpers import images
idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[1:]:
    try:
        result = images.load_image(path, 224).shape
    except ValueError as error:
        result = error
    print(f"{path}: {result}")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - idle) // 1024)
"""


def peak_mb(*paths) -> tuple[list[str], int]:
    """Decode pictures in a fresh process: what it printed, and its peak memory in MB
    over the process before decoding."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    *lines, peak = result.stdout.splitlines()
    return lines, int(peak)


def test_huge_pictures_stay_within_memory_bounds(tmp_path):
    bomb = blank_png(tmp_path / "bomb.png", 9000, 9000)  # 81 Mpixels
    assert bomb.stat().st_size < 300_000
    just_under = blank_png(tmp_path / "under.png", 5000, 5000)  # 25 Mpixels exactly
    phone = save(Image.new("RGB", (8000, 6000), "gray"), tmp_path / "phone.jpg")
    lines, peak = peak_mb(bomb, just_under, phone)
    assert "bomb.png: 9000x9000 pixels is over the 25,000,000 limit" in lines[0]
    assert lines[1].endswith("under.png: (224, 224, 3)")
    assert lines[2].endswith("phone.jpg: (224, 224, 3)"), "a 48 Mpixel JPEG shrinks first"
    assert peak < 300, f"decoding took {peak} MB over the idle process"


def rotated_webp(path, side=4000):
    """A lossless transparent WebP, EXIF orientation 6 (4000x4000: WebP's limit)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    picture = Image.new("RGBA", (side, side), (200, 30, 30, 128))
    picture.save(path, "WEBP", lossless=True, quality=0, method=0, exif=exif.tobytes())
    return path


def animated_webp(path):
    frames = [Image.new("RGBA", (4000, 4000), (i * 60, 0, 0, 200)) for i in range(3)]
    frames[0].save(
        path, "WEBP", save_all=True, append_images=frames[1:], quality=1, method=0
    )
    return path


TRANSPARENT = {
    "rotated transparent WebP": rotated_webp,
    "animated WebP": animated_webp,
    "grey and alpha PNG": lambda p: png(p, 5000, 5000, colour=4),
    "16-bit RGBA PNG": lambda p: png(p, 5000, 5000, colour=6, depth=16),
    "palette PNG with transparency": lambda p: png(
        p, 5000, 5000, colour=3, chunks=[(b"PLTE", bytes(12)), (b"tRNS", b"\0")]
    ),
}


@pytest.mark.parametrize("kind", TRANSPARENT)
def test_transparent_and_rotated_pictures_stay_within_memory_bounds(kind, tmp_path):
    """Laying transparency on white and rotating work on the shrunk copy: the peak is
    about the one decoded picture, not three copies of it."""
    path = TRANSPARENT[kind](tmp_path / f"picture{'.webp' if 'WebP' in kind else '.png'}")
    lines, peak = peak_mb(path)
    assert lines[0].endswith(": (224, 224, 3)"), lines
    assert peak < 300, f"{kind}: decoding took {peak} MB over the idle process"


def test_a_webp_over_its_own_limit_is_refused_before_decoding(tmp_path):
    lines, peak = peak_mb(rotated_webp(tmp_path / "big.webp", side=5000))
    assert "5000x5000 pixels is over the 16,000,000 limit for WEBP" in lines[0]
    assert peak < 50


def test_a_rotated_transparent_picture_is_upright_on_white(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    picture = Image.new("RGBA", (100, 40), (0, 0, 0, 0))
    picture.paste((200, 0, 0, 255), (0, 0, 50, 40))  # the left half red, the rest clear
    picture.save(tmp_path / "r.webp", "WEBP", lossless=True, exif=exif.tobytes())
    upright = images.load_image(tmp_path / "r.webp", 50).astype(int)
    assert upright[5, 25].tolist()[0] > 150 and upright[5, 25, 1] < 80  # red on top
    assert upright[45, 25].min() > 240  # transparent on white below


def eps(path):
    """A valid EPS picture: Pillow writes it without Ghostscript but needs it to read."""
    Image.new("RGB", (20, 20), "red").save(path, "EPS")
    return path


def test_only_listed_formats_are_opened_and_no_program_is_started(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    def no_ghostscript(*args, **kwargs):
        raise AssertionError("Ghostscript was started")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    with pytest.raises(ValueError, match="not a supported image .accepted: JPEG, PNG"):
        images.load_image(eps(tmp_path / "picture.eps"), 32)
    Image.new("RGB", (20, 20)).save(tmp_path / "picture.tif")
    with pytest.raises(ValueError, match="not a supported image"):
        images.load_image(tmp_path / "picture.tif", 32)
    for image_format in images.IMAGE_FORMATS:
        path = save(
            Image.new("RGB", (20, 20), "red"), tmp_path / "x", format=image_format
        )
        assert images.load_image(path, 8).shape == (8, 8, 3), image_format


def test_extraction_skips_bad_files_and_keeps_going(tmp_path):
    folder = bad_images(tmp_path / "bad")
    paths = {p.name: p for p in sorted(folder.iterdir())}
    index = features.extract(
        paths,
        tmp_path / "out",
        weights=None,
        image_size=SMALL,
        batch_size=3,
        progress=False,
    )
    array = cache.load_features(tmp_path / "out")[0]
    assert sorted(index["skipped"]) == [
        "empty.jpg",
        "huge.png",
        "text.jpg",
        "truncated.jpg",
    ]
    for row, name in enumerate(index["names"]):
        assert (np.abs(array[row]).sum() == 0) == (name in index["skipped"]), name


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 100), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 40, 20))  # white band at the top
    exif = image.getexif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the band moves to the right
    path = save(image, tmp_path / "r.jpg", exif=exif)
    decoded = images.load_image(path, 50).astype(int)
    assert decoded[25, 45].mean() > 200 and decoded[25, 5].mean() < 60
    # Figures (the caption command's attention figure) show the picture the same way.
    from helpers import viz

    assert viz.open_picture(path).size == (100, 40)


def run_cli(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "helpers.features", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        **kwargs,
    )


def test_resume_after_sigkill_gives_identical_output(tmp_path):
    data = sample.write_sample(tmp_path / "data", 40, seed=4)
    common = ["--data", data, "--weights", "none", "--image-size", 96, "--batch-size", 2]
    reference = run_cli(*common, "--out", tmp_path / "reference")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    out = tmp_path / "killed"
    process = run_cli(*common, "--out", out)
    progress = out / cache.PROGRESS
    deadline = time.time() + 120
    while time.time() < deadline:
        state = json.loads(progress.read_text()) if progress.exists() else {"done": 0}
        if state["done"] >= 6:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = json.loads(progress.read_text())["done"]
    assert 6 <= done < 40, "the kill must land in the middle of the run"
    assert not (out / cache.FEATURES).exists() and not (out / cache.INDEX).exists()
    resumed = run_cli(*common, "--out", out)
    assert resumed.wait(timeout=300) == 0
    log = resumed.stderr.read()
    assert re.search(rf"\| *{done}/40 \[00:00<", log), "must start where the kill stopped"
    assert (out / cache.FEATURES).read_bytes() == (
        tmp_path / "reference" / cache.FEATURES
    ).read_bytes()
    assert (
        json.loads((out / cache.INDEX).read_text())["names"][:done]
        == json.loads((tmp_path / "reference" / cache.INDEX).read_text())["names"][:done]
    )


def test_weights_from_a_local_h5_file(tmp_path, pictures):
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    random_model = encoders.build_encoder("vgg16", None, SMALL, seed=9)
    base = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(SMALL, SMALL, 3)
    )
    base.set_weights(random_model.get_weights() + base.get_weights()[26:])
    path = tmp_path / "vgg16_notop.h5"  # the same legacy format as Keras's ImageNet file
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, base)
    loaded = encoders.build_encoder("vgg16", str(path), SMALL, seed=1)
    images = np.random.default_rng(0).uniform(-100, 100, (2, SMALL, SMALL, 3))
    np.testing.assert_allclose(loaded(images), random_model(images), rtol=1e-5, atol=1e-5)
    assert encoders.weights_identity(str(path), 1).startswith(
        "file:vgg16_notop.h5:sha256:"
    )


def test_missing_imagenet_weights_give_a_clear_error(tmp_path, monkeypatch):
    import keras.src.applications.vgg16 as vgg16

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(vgg16, "WEIGHTS_PATH_NO_TOP", "http://127.0.0.1:9/nothing.h5")
    with pytest.raises(RuntimeError) as error:
        encoders.build_encoder("vgg16", "imagenet", SMALL)
    message = str(error.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "models") in message and "--weights PATH" in message


def test_resnet50_goes_through_the_same_interface(pictures, tmp_path):
    index = features.extract(
        dict(list(pictures.items())[:1]),
        tmp_path,
        encoder="resnet50",
        weights=None,
        image_size=64,
        batch_size=1,
        progress=False,
    )
    assert index["layer"] == "conv5_block3_out" and index["shape"] == [1, 4, 2048]
    array, _ = cache.load_features(tmp_path)
    assert array.dtype == np.float32 and np.isfinite(array).all()  # past float16's range


def test_features_that_do_not_fit_the_cache_dtype_are_refused(pictures, tmp_path):
    import keras

    inputs = keras.Input((SMALL, SMALL, 3))
    huge = keras.Model(inputs, keras.layers.Rescaling(1e6)(inputs))  # far past 65504
    with pytest.raises(ValueError, match=r"do not fit float16 \(inf or NaN\)"):
        features.extract(
            dict(list(pictures.items())[:2]),
            tmp_path,
            weights=None,
            image_size=SMALL,
            batch_size=2,
            progress=False,
            model=huge,
        )
    assert not (tmp_path / cache.FEATURES).exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--weights", "nothing.h5"], "no such file"),
        (["--batch-size", "0"], "must be a positive number"),
        (["--encoder", "alexnet"], "invalid choice"),
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, args, message):
    process = run_cli("--data", tmp_path, "--out", tmp_path / "out", *args)
    assert process.wait(timeout=60) == 2
    assert message in process.stderr.read()


def test_cli_reports_an_unreadable_data_folder(tmp_path):
    process = run_cli(
        "--data", tmp_path / "missing", "--out", tmp_path / "out", "--weights", "none"
    )
    assert process.wait(timeout=120) == 2
    assert "error:" in process.stderr.read()


def test_encoder_rebuilt_from_the_index_gives_the_cached_features(pictures, tmp_path):
    """What the caption command and the web page rely on: the same encoder again."""
    two = dict(list(pictures.items())[:2])
    index = features.extract(
        two, tmp_path, weights=None, image_size=64, batch_size=2, seed=77, progress=False
    )
    cached = cache.load_features(tmp_path)[0]
    encoder = encoders.encoder_from_identity(index)
    batch = np.stack([images.load_image(p, 64) for p in two.values()]).astype("float32")
    again = encoder.predict_on_batch(encoders.preprocess("vgg16")(batch)).reshape(
        2, 16, 512
    )
    np.testing.assert_allclose(again, cached.astype(np.float32), rtol=2e-3, atol=2e-3)
    with pytest.raises(ValueError, match="pass it with --weights"):
        encoders.encoder_from_identity({**index, "weights": "file:x.h5:sha256:00"})
