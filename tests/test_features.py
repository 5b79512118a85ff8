"""Feature extraction: shapes, order, resume after SIGKILL, bad images, cache reuse, CLI."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from PIL import Image

from helpers import features, sample
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
    array, loaded = features.load_features(tmp_path)
    assert array.shape == (2, 196, 512) and array.dtype == np.float16
    assert (
        loaded == index
        and index["layer"] == "block5_conv3"
        and index["image_size"] == 224
    )
    assert (
        index["names"] == list(two) and index["weights"] == "random-he-normal(seed=1234)"
    )
    assert np.abs(array).sum() > 0


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
        features.load_features(tmp_path / "a")[0],
        features.load_features(tmp_path / "b")[0],
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
    stamp = (tmp_path / features.FEATURES).stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("a finished cache must not rebuild the encoder")

    with monkeypatch.context() as patch:
        patch.setattr(features, "build_encoder", fail)
        run(image_size=SMALL)
    assert (tmp_path / features.FEATURES).stat().st_mtime_ns == stamp
    index = run(image_size=64)
    assert index["shape"] == [2, 16, 512]
    assert features.load_features(tmp_path)[0].shape == (2, 16, 512)


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
            decoded[path.name] = features.load_image(path, 64)
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
    rotated = features.load_image(folder / "rotated.jpg", 100)
    assert rotated.shape == (100, 100, 3)  # after exif_transpose the picture is 100x40


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
    array = features.load_features(tmp_path / "out")[0]
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
    decoded = features.load_image(path, 50).astype(int)
    assert decoded[25, 45].mean() > 200 and decoded[25, 5].mean() < 60


def run_cli(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "helpers.features", "extract", *map(str, args)],
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
    progress = out / features.PROGRESS
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
    assert not (out / features.FEATURES).exists() and not (out / features.INDEX).exists()
    resumed = run_cli(*common, "--out", out)
    assert resumed.wait(timeout=300) == 0
    log = resumed.stderr.read()
    assert re.search(rf"\| *{done}/40 \[00:00<", log), "must start where the kill stopped"
    assert (out / features.FEATURES).read_bytes() == (
        tmp_path / "reference" / features.FEATURES
    ).read_bytes()
    assert (
        json.loads((out / features.INDEX).read_text())["names"][:done]
        == json.loads((tmp_path / "reference" / features.INDEX).read_text())["names"][
            :done
        ]
    )


def test_weights_from_a_local_h5_file(tmp_path, pictures):
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    random_model = features.build_encoder("vgg16", None, SMALL, seed=9)
    base = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(SMALL, SMALL, 3)
    )
    base.set_weights(random_model.get_weights() + base.get_weights()[26:])
    path = tmp_path / "vgg16_notop.h5"  # the same legacy format as Keras's ImageNet file
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, base)
    loaded = features.build_encoder("vgg16", str(path), SMALL, seed=1)
    images = np.random.default_rng(0).uniform(-100, 100, (2, SMALL, SMALL, 3))
    np.testing.assert_allclose(loaded(images), random_model(images), rtol=1e-5, atol=1e-5)
    assert features.weights_identity(str(path), 1).startswith(
        "file:vgg16_notop.h5:sha256:"
    )


def test_missing_imagenet_weights_give_a_clear_error(tmp_path, monkeypatch):
    import keras.src.applications.vgg16 as vgg16

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(vgg16, "WEIGHTS_PATH_NO_TOP", "http://127.0.0.1:9/nothing.h5")
    with pytest.raises(RuntimeError) as error:
        features.build_encoder("vgg16", "imagenet", SMALL)
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
    array, _ = features.load_features(tmp_path)
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
    assert not (tmp_path / features.FEATURES).exists()


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
    cached = features.load_features(tmp_path)[0]
    encoder = features.encoder_from_identity(index)
    images = np.stack([features.load_image(p, 64) for p in two.values()]).astype(
        "float32"
    )
    again = encoder.predict_on_batch(features.preprocess("vgg16")(images)).reshape(
        2, 16, 512
    )
    np.testing.assert_allclose(again, cached.astype(np.float32), rtol=2e-3, atol=2e-3)
    with pytest.raises(ValueError, match="pass it with --weights"):
        features.encoder_from_identity({**index, "weights": "file:x.h5:sha256:00"})
