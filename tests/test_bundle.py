"""The model bundle: complete, consistent, and refused when its parts do not match."""

import json
import shutil

import pytest

from helpers import bundle


def copy(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_bundle_loads_every_kind(tiny_bundle):
    folder, _ = tiny_bundle
    for kind in bundle.KINDS:
        loaded = bundle.load_bundle(folder, kind)
        assert loaded.model.vocabulary_size == len(loaded.vocabulary)
        assert loaded.encoder["layer"] == "block5_conv3" and loaded.encoder["grid"] == 4
    manifest = json.loads((folder / "bundle.json").read_text())
    assert manifest["models"] == ["attention", "merge", "scst"]


def test_a_vocabulary_from_another_run_is_refused(tiny_bundle, tmp_path):
    folder = copy(tiny_bundle[0], tmp_path)
    words = json.loads((folder / "vocabulary.json").read_text())
    words["words"][4], words["words"][5] = words["words"][5], words["words"][4]
    (folder / "vocabulary.json").write_text(json.dumps(words))
    with pytest.raises(ValueError, match="vocabulary.json is not the file this bundle"):
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


def rebuild(folder, tmp_path, kinds, target=None):
    """Save the bundle in `folder` again, with only some of its decoders."""
    from helpers.config import load_config

    loaded = {kind: bundle.load_bundle(folder, kind) for kind in kinds}
    first = next(iter(loaded.values()))
    index = {
        **{k: first.encoder[k] for k in ("encoder", "layer", "image_size", "weights")},
        "shape": [1, first.encoder["grid"], first.encoder["feature_dim"]],
    }
    return bundle.save_bundle(
        target or folder,
        {kind: b.model for kind, b in loaded.items()},
        first.vocabulary,
        load_config(folder / "config.json"),
        index,
    )


def test_saving_over_a_bundle_leaves_no_stale_decoder(tiny_bundle, tmp_path):
    folder = copy(tiny_bundle[0], tmp_path)
    rebuild(folder, tmp_path, ["attention"])
    assert not (folder / "merge.keras").exists()
    with pytest.raises(ValueError, match=r"has no merge decoder \(bundle.json lists"):
        bundle.load_bundle(folder, "merge")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no leftovers"


def test_a_decoder_from_another_bundle_is_refused(tiny_bundle, tmp_path):
    folder = copy(tiny_bundle[0], tmp_path)
    shutil.copy(folder / "merge.keras", folder / "attention.keras")
    with pytest.raises(ValueError, match="attention.keras is not the file this bundle"):
        bundle.load_bundle(folder)


def test_bundles_are_only_written_over_our_own_folders(tiny_bundle, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not written by this project"):
        rebuild(tiny_bundle[0], tmp_path, ["merge"], target=mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.pop("files"), r"files should be dict"),
        (lambda m: m["encoder"].update(grid="4"), r"encoder.grid should be int"),
        (lambda m: m.update(extra=1), r"unknown key extra"),
        (lambda m: m.update(models=["attention", "lstm"]), r"models lists 'lstm'"),
    ],
)
def test_a_malformed_manifest_gets_one_clear_message(
    tiny_bundle, tmp_path, edit, message
):
    folder = copy(tiny_bundle[0], tmp_path)
    manifest = json.loads((folder / "bundle.json").read_text())
    edit(manifest)
    (folder / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ValueError, match=r"bundle.json: not a bundle manifest.*" + message
    ):
        bundle.load_bundle(folder)


def test_a_config_with_an_unknown_field_gets_one_clear_message(tiny_bundle, tmp_path):
    from helpers import caption

    folder = copy(tiny_bundle[0], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "warp_speed": 9}))
    manifest = json.loads((folder / "bundle.json").read_text())
    manifest["files"]["config.json"] = bundle._sha256(folder / "config.json")
    (folder / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"config.json: not a configuration.*warp_speed"):
        bundle.load_bundle(folder)
    picture = next(iter(tiny_bundle[1].image_paths.values()))
    assert caption.main([str(picture), "--model", str(folder)]) == 2
