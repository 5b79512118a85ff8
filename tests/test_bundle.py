"""The model bundle: complete, consistent, and refused when its parts do not match."""

import json
import math
import os
import re
import shutil
import threading
import zipfile

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
    assert manifest["models"] == ["attention", "merge", "scst", "transformer"]


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


def refused(folder, capsys, picture, *options) -> str:
    """Run the caption command on a bundle that must be refused within 10 s, in one
    line (no traceback) with exit 2; return that line."""
    from helpers import caption

    result = {}
    worker = threading.Thread(
        target=lambda: result.update(
            code=caption.main([str(picture), "--model", str(folder), *options])
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the command hung"
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("note:")]
    assert result["code"] == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def edit_json(folder, name, change):
    """Edit one JSON file of a bundle and record its new sha256, as a careful forger
    would: the file then passes the hash check and must be refused on its content."""
    path = folder / name
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))
    if name != "bundle.json":
        manifest = json.loads((folder / "bundle.json").read_text())
        manifest["files"][name] = bundle._sha256(path)
        (folder / "bundle.json").write_text(json.dumps(manifest))


def rezip(folder, name, change):
    """Rewrite a .keras file (a zip) with its members changed, and its sha256."""
    path = folder / name
    with zipfile.ZipFile(path) as archive:
        members = {m: archive.read(m) for m in archive.namelist()}
    change(members)
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    edit_json(
        folder, "bundle.json", lambda m: m["files"].update({name: bundle._sha256(path)})
    )


def sized(**sizes):
    """A change to a .keras file: its decoder config asks for these sizes."""

    def change(members):
        config = json.loads(members["config.json"])
        config["config"].update(sizes)
        members["config.json"] = json.dumps(config).encode()

    return change


def unregistered(members):
    config = json.loads(members["config.json"])
    config["class_name"], config["registered_name"] = "Nope", "captioning>Nope"
    members["config.json"] = json.dumps(config).encode()


CASES = {
    "another encoder's grid": (
        lambda f: edit_json(
            f,
            "bundle.json",
            lambda m: m["encoder"].update(encoder="resnet50", layer="conv5_block3_out"),
        ),
        r"bundle.json: its encoder \(resnet50 at 32 px\) gives 1x2048 features, but "
        r"the decoder reads 4x512",
    ),
    "another picture size": (
        lambda f: edit_json(
            f, "bundle.json", lambda m: m["encoder"].update(image_size=64)
        ),
        r"gives 16x512 features, but the decoder reads 4x512",
    ),
    "a huge picture size": (
        lambda f: edit_json(
            f, "bundle.json", lambda m: m["encoder"].update(image_size=10**6)
        ),
        r"bundle.json: not a bundle manifest .*image_size is outside 32..1024",
    ),
    "beam width 0": (
        lambda f: edit_json(f, "config.json", lambda c: c.update(beam_width=0)),
        r"config.json: beam_width = 0 is outside 1..10",
    ),
    "a negative beam width": (
        lambda f: edit_json(f, "config.json", lambda c: c.update(beam_width=-3)),
        r"config.json: beam_width = -3 is outside",
    ),
    "a huge beam width": (
        lambda f: edit_json(f, "config.json", lambda c: c.update(beam_width=10**6)),
        r"config.json: beam_width = 1000000 is outside",
    ),
    "length penalty NaN": (
        lambda f: edit_json(
            f, "config.json", lambda c: c.update(length_penalty=math.nan)
        ),
        r"config.json: length_penalty = nan is outside",
    ),
    "a huge max_length": (
        lambda f: edit_json(f, "vocabulary.json", lambda v: v.update(max_length=10**7)),
        r"vocabulary.json: max_length 10000000 is outside 1..100",
    ),
    "a .keras without config.json": (
        lambda f: rezip(f, "attention.keras", lambda m: m.pop("config.json")),
        r"attention.keras: holds 2 members, not \['config.json'",
    ),
    "a .keras with a member over its unpacked size": (
        lambda f: rezip(
            f,
            "attention.keras",
            lambda m: m.update({"config.json": m["config.json"] + b" " * 2**22}),
        ),
        r"attention.keras: config.json is [\d,]+ bytes unpacked, over the 4,194,304",
    ),
    "a .keras with a member of its own": (
        lambda f: rezip(f, "attention.keras", lambda m: m.update({"x.bin": b"x"})),
        r"attention.keras: holds 4 members",
    ),
    "a Transformer asking for 1,000 blocks": (
        lambda f: rezip(f, "transformer.keras", sized(blocks=1000)),
        r"transformer.keras: blocks = 1000 is outside 1..12",
        "transformer",  # the decoder to caption with (default: attention)
    ),
    "a decoder asking for 100,000 units": (
        lambda f: rezip(f, "attention.keras", sized(units=100_000)),
        r"attention.keras: units = 100000 is outside 1..2048",
    ),
    "a decoder asking for a huge embedding": (
        lambda f: rezip(f, "attention.keras", sized(embedding_dim=2**20)),
        r"attention.keras: embedding_dim = 1048576 is outside 1..1024",
    ),
    "bundle.json a directory": (
        lambda f: ((f / "bundle.json").unlink(), (f / "bundle.json").mkdir()),
        r"bundle.json: is a directory",
    ),
    "a .keras naming an unregistered class": (
        lambda f: rezip(f, "attention.keras", unregistered),
        r"attention.keras: not a decoder this version can load",
    ),
    "bundle.json a link to /dev/zero": (
        lambda f: (
            (f / "bundle.json").unlink(),
            (f / "bundle.json").symlink_to("/dev/zero"),
        ),
        r"bundle.json: leads out of",
    ),
    "bundle.json a FIFO": (
        lambda f: ((f / "bundle.json").unlink(), os.mkfifo(f / "bundle.json")),
        r"bundle.json: is not a regular file",
    ),
    "vocabulary.json a FIFO": (
        lambda f: ((f / "vocabulary.json").unlink(), os.mkfifo(f / "vocabulary.json")),
        r"vocabulary.json: is not a regular file",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bundle_whose_parts_do_not_fit_is_refused_in_one_line(
    case, tiny_bundle, tmp_path, capsys
):
    folder = copy(tiny_bundle[0], tmp_path)
    damage, message, *kind = CASES[case]
    damage(folder)
    picture = next(iter(tiny_bundle[1].image_paths.values()))
    line = refused(folder, capsys, picture, *(["--kind", *kind] if kind else []))
    assert line.startswith("error: ") and re.search(message, line), line


def test_the_web_page_refuses_such_a_bundle_at_start_up_in_one_line(
    tiny_bundle, tmp_path, capsys
):
    from helpers import app

    folder = copy(tiny_bundle[0], tmp_path)
    edit_json(folder, "config.json", lambda c: c.update(beam_width=0))
    assert app.main(["--model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.json: beam_width = 0 is outside" in err
