"""The model bundle: complete, consistent, and refused when its parts do not match."""

import json
import shutil

import pytest

from helpers import bundle


def copy(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_bundle_loads_both_models(tiny_bundle):
    folder, _ = tiny_bundle
    for kind in bundle.KINDS:
        loaded = bundle.load_bundle(folder, kind)
        assert loaded.model.vocabulary_size == len(loaded.vocabulary)
        assert loaded.encoder["layer"] == "block5_conv3" and loaded.encoder["grid"] == 4
    manifest = json.loads((folder / "bundle.json").read_text())
    assert manifest["models"] == ["attention", "merge"]


def test_a_vocabulary_from_another_run_is_refused(tiny_bundle, tmp_path):
    folder = copy(tiny_bundle[0], tmp_path)
    words = json.loads((folder / "vocabulary.json").read_text())
    words["words"][4], words["words"][5] = words["words"][5], words["words"][4]
    (folder / "vocabulary.json").write_text(json.dumps(words))
    with pytest.raises(
        ValueError, match="not the vocabulary these decoders were trained"
    ):
        bundle.load_bundle(folder)


def test_features_from_another_encoder_are_refused(tiny_bundle):
    folder, _ = tiny_bundle
    other = {"encoder": "resnet50", "layer": "conv5_block3_out"}
    with pytest.raises(ValueError, match="encoder is 'vgg16', not 'resnet50'"):
        bundle.load_bundle(folder, expect_encoder=other)


def test_a_model_of_another_size_is_refused(tiny_bundle, tmp_path):
    folder = copy(tiny_bundle[0], tmp_path)
    manifest = json.loads((folder / "bundle.json").read_text())
    manifest["encoder"]["grid"] = 196
    (folder / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="expects 4x512 features"):
        bundle.load_bundle(folder)


def test_incomplete_bundle(tiny_bundle, tmp_path):
    folder = copy(tiny_bundle[0], tmp_path)
    (folder / "merge.keras").unlink()
    with pytest.raises(FileNotFoundError, match="merge.keras is missing"):
        bundle.load_bundle(folder, "merge")
