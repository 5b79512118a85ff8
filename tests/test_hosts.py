"""Hosted kernels: which host this is, and where data and outputs go in a checkout,
installed in site-packages, on Kaggle and with the environment variables."""

import pytest

from helpers import data, hosts, paths, run
from helpers.config import get_config

HOST_MARKERS = ("CAPTION_HOST", "COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE")


@pytest.fixture
def no_host(monkeypatch):
    """A machine of one's own: no host variable, no data or artifacts variable."""
    for name in (*HOST_MARKERS, hosts.DATA_VARIABLE, paths.ARTIFACTS_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hosts, "_importable", lambda name: False)


def kaggle_flickr8k(folder, names=("a.jpg", "b.jpg")):
    """Flickr8k as Kaggle has it: captions.txt beside Images/, no split lists."""
    (folder / "Images").mkdir(parents=True)
    rows = ["image,caption"]
    for name in names:
        (folder / "Images" / name).write_bytes(b"\xff\xd8\xff")
        rows += [f"{name},A dog runs number {k} ." for k in range(5)]
    (folder / "captions.txt").write_text("\n".join(rows) + "\n")
    return folder


def snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_the_host_is_forced_by_its_variable_else_detected(no_host, monkeypatch):
    assert hosts.host() is None
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert hosts.host() == "kaggle"
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20250101")
    assert hosts.host() == "colab"
    monkeypatch.setenv("CAPTION_HOST", "kaggle")
    assert hosts.host() == "kaggle"
    monkeypatch.setenv("CAPTION_HOST", "binder")
    with pytest.raises(ValueError, match="CAPTION_HOST='binder': expected one of"):
        hosts.host()


def test_outputs_go_to_the_checkout_else_the_working_directory_never_site_packages(
    no_host, tmp_path, monkeypatch
):
    checkout = tmp_path / "checkout"
    (checkout / "notebooks").mkdir(parents=True)
    assert paths.artifacts_root(checkout) == checkout / "artifacts"
    assert paths.work_folder(checkout) == checkout
    # Installed: even a site-packages that happens to hold a notebooks/ folder.
    site = tmp_path / "lib" / "python3.12" / "site-packages"
    (site / "notebooks").mkdir(parents=True)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert paths.artifacts_root(site) == here / "artifacts"
    monkeypatch.setattr(paths, "ROOT", site)
    assert paths.data_dir(get_config("ci")) == here / "data" / "sample-ci"
    absolute = get_config("ci", data_dir=str(tmp_path / "mine"))
    assert paths.data_dir(absolute) == tmp_path / "mine"
    # Kaggle: its output folder, unless $CAPTION_ARTIFACTS says otherwise.
    monkeypatch.setenv("CAPTION_HOST", "kaggle")
    monkeypatch.setattr(hosts, "KAGGLE_WORKING", tmp_path / "working")
    assert paths.artifacts_root(site) == tmp_path / "working" / "artifacts"
    assert paths.data_dir(get_config("ci")) == tmp_path / "working" / "data" / "sample-ci"
    assert paths.artifacts_root(checkout) == checkout / "artifacts"
    monkeypatch.setenv("CAPTION_ARTIFACTS", str(tmp_path / "out"))
    assert paths.artifacts_root(site) == tmp_path / "out"


def test_the_data_variable_sets_every_profiles_folder_which_is_only_read(
    no_host, tmp_path, monkeypatch
):
    folder = kaggle_flickr8k(tmp_path / "flickr8k")
    before = snapshot(folder)
    monkeypatch.setenv("CAPTION_DATA_DIR", str(folder))
    for profile in ("ci", "sample", "flickr8k"):
        cfg = get_config(profile)
        assert (cfg.data_dir, cfg.sample_images) == (str(folder), 0)
    dataset = data.load_profile_dataset(get_config("ci"))  # no sample generated there
    assert dataset.layout == "flickr8k-kaggle" and len(dataset.captions) == 2
    assert snapshot(folder) == before
    assert get_config("ci", data_dir="elsewhere").data_dir == "elsewhere"
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError) as error:
        get_config("ci")
    assert str(error.value) == f"CAPTION_DATA_DIR={tmp_path / 'missing'}: no such folder"


def test_on_kaggle_an_attached_flickr8k_is_found_and_read_in_place(
    no_host, tmp_path, monkeypatch
):
    inputs = tmp_path / "input"
    (inputs / "other-dataset" / "files").mkdir(parents=True)
    folder = kaggle_flickr8k(inputs / "datasets" / "adityajn105" / "flickr8k")
    monkeypatch.setenv("CAPTION_KAGGLE_INPUT", str(inputs))
    assert hosts.kaggle_flickr8k() == folder
    assert get_config("flickr8k").data_dir == "data/flickr8k"  # not on Kaggle
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    for profile in ("flickr8k", "flickr8k-cpu"):
        assert get_config(profile).data_dir == str(folder)
    assert get_config("ci").data_dir == "data/sample-ci"  # the sample stays the sample
    assert get_config("flickr30k").data_dir == "data/flickr30k"
    monkeypatch.setattr(hosts, "SEARCH_DEPTH", 2)  # the search is bounded
    assert hosts.kaggle_flickr8k() is None
    assert get_config("flickr8k").data_dir == "data/flickr8k"
    monkeypatch.setattr(paths, "ROOT", tmp_path)  # not a checkout
    monkeypatch.setattr(hosts, "KAGGLE_WORKING", tmp_path / "working")
    with pytest.raises(FileNotFoundError, match="attach the Kaggle dataset Flickr8k"):
        data.load_profile_dataset(get_config("flickr8k"))


def test_the_series_runner_says_in_one_line_when_there_are_no_notebooks(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(run, "NOTEBOOKS", tmp_path / "notebooks")
    assert run.main([]) == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and f"no notebooks folder at {tmp_path}" in message


def write_lists(folder, lists):
    folder.mkdir(exist_ok=True)
    for split, file in data.SPLIT_FILES.items():
        if split in lists:
            (folder / file).write_text("".join(f"{name}\n" for name in lists[split]))
    return folder


def test_a_kaggle_folder_takes_the_official_lists_shipped_with_the_package(
    tmp_path, monkeypatch
):
    names = [f"{i:02d}.jpg" for i in range(16)]
    folder = kaggle_flickr8k(tmp_path / "flickr8k", names)
    shipped = tmp_path / "splits"
    monkeypatch.setattr(data, "SHIPPED_SPLITS", shipped)
    seeded = data.load_dataset(folder, seed=5)  # none shipped: a seeded split, said so
    assert seeded.split_source == "seeded split by image (seed 5)"
    assert not seeded.official_split
    assert seeded.split_line() == (
        "Split: seeded split by image (seed 5) (not the official Flickr8k test split)"
    )
    lists = {"train": names[:12], "dev": names[12:14], "test": [*names[14:], "x.jpg"]}
    write_lists(shipped, {"train": lists["train"], "dev": lists["dev"]})
    assert data.load_dataset(folder).split_source.startswith("seeded")  # one missing
    write_lists(shipped, lists)
    official = data.load_dataset(folder)
    assert official.split_source == "official lists shipped with helpers"
    assert official.splits == {**lists, "test": names[14:]}
    assert official.official_split and official.split_line() == (
        "Split: official Flickr8k test split (official lists shipped with helpers)"
    )
    # Other pictures than Flickr8k's: the lists name too few of them to be theirs.
    write_lists(shipped, {k: [f"other-{n}" for n in v] for k, v in lists.items()})
    foreign = data.load_dataset(folder, seed=5)
    assert foreign.splits == seeded.splits and not foreign.official_split
    assert any("name only 0 of these 16 images" in note for note in foreign.notes)


def test_the_generated_sample_never_calls_its_split_lists_official(tmp_path):
    from helpers import sample

    generated = data.load_dataset(sample.write_sample(tmp_path / "sample", 12, seed=2))
    assert generated.split_source == "the generated sample's lists in Flickr8k_text/"
    assert not generated.official_split
    assert generated.split_line().endswith("(not the official Flickr8k test split)")
    (tmp_path / "sample" / sample.MARKER).unlink()  # the same files, as Flickr8k has them
    real = data.load_dataset(tmp_path / "sample")
    assert real.official_split and real.split_source == "official lists in Flickr8k_text/"
