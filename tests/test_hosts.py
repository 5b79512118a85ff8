"""Hosted kernels: which host this is, and where data and outputs go in a checkout,
installed in site-packages, on Kaggle and with the environment variables."""

import os
import re
import subprocess
import venv

import nbformat
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
    assert paths.artifacts_root(site) == here / "artifacts"  # no /kaggle/working here
    (tmp_path / "working").mkdir()
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
    assert "the lists in helpers/splits/ name only 0 of 16" in foreign.notes


def test_the_generated_sample_never_calls_its_split_lists_official(tmp_path):
    from helpers import sample

    generated = data.load_dataset(sample.write_sample(tmp_path / "sample", 12, seed=2))
    assert generated.split_source == "the generated sample's lists in Flickr8k_text/"
    assert not generated.official_split
    assert generated.split_line().endswith("(not the official Flickr8k test split)")
    (tmp_path / "sample" / sample.MARKER).unlink()  # the same files, as Flickr8k has them
    real = data.load_dataset(tmp_path / "sample")
    assert real.official_split and real.split_source == "official lists in Flickr8k_text/"


SETUP_CELL = paths.NOTEBOOKS / hosts.SETUP_CELL
SERIES = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))


def test_every_notebook_starts_with_the_one_setup_cell_before_its_parameters():
    text = SETUP_CELL.read_text().strip()
    assert not re.search(r"^\s*(from|import) helpers", text, re.MULTILINE)
    for path in SERIES:
        notebook = nbformat.read(path, as_version=4)
        title, *_ = notebook.cells
        assert title.cell_type == "markdown" and "docs/hosted.md" in title.source
        setup, parameters = [c for c in notebook.cells if c.cell_type == "code"][:2]
        assert setup.metadata.get("tags") == [hosts.SETUP_TAG, "hide-input"], path.name
        assert setup.metadata["jupyter"]["source_hidden"], path.name  # folded
        assert setup.source == text, f"{path.name}: run `python -m helpers.hosts`"
        assert parameters.metadata.get("tags") == ["parameters"], path.name


def test_the_setup_cells_are_rewritten_from_the_one_text(tmp_path):
    (tmp_path / "setup_cell.py").write_text("print('set up')\n")
    cells = [nbformat.v4.new_markdown_cell("# 01"), nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "01_a.ipynb")
    assert hosts.write_setup_cells(tmp_path) == [tmp_path / "01_a.ipynb"]
    notebook = nbformat.read(tmp_path / "01_a.ipynb", as_version=4)
    assert [c.source for c in notebook.cells] == ["# 01", "print('set up')", "x = 1"]
    assert hosts.write_setup_cells(tmp_path) == []  # the same text: nothing to do
    (tmp_path / "setup_cell.py").write_text("print('set up again')\n")
    assert hosts.write_setup_cells(tmp_path) == [tmp_path / "01_a.ipynb"]
    notebook = nbformat.read(tmp_path / "01_a.ipynb", as_version=4)
    assert [c.source for c in notebook.cells][1:] == ["print('set up again')", "x = 1"]


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A Python with pip and nothing else (no helpers, no TensorFlow): a fresh host."""
    folder = tmp_path_factory.mktemp("venv")
    venv.create(folder, with_pip=True)
    return folder / "bin" / "python"


def fake_distributions(folder, **versions):
    """Installed-package metadata only, as `importlib.metadata` finds it."""
    for name, version in versions.items():
        info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
    return folder


def run_setup_cell(python, **environment):
    keep = {
        k: v
        for k, v in os.environ.items()
        if k not in (*HOST_MARKERS, "PYTHONPATH", "CAPTION_REPOSITORY")
    }
    return subprocess.run(
        [str(python), str(SETUP_CELL)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**keep, **environment},
    )


def test_off_a_host_the_setup_cell_says_so_in_one_line_and_installs_nothing(
    bare_python,
):
    site = next(bare_python.parent.parent.glob("lib/python*/site-packages"))
    before = sorted(site.iterdir())
    done = run_setup_cell(bare_python)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Not on Colab or Kaggle: using the installed helpers package.\n"
    assert sorted(site.iterdir()) == before


def test_on_a_host_a_failed_install_is_a_short_clear_error(bare_python, tmp_path):
    host = fake_distributions(tmp_path, tensorflow="2.20.0", keras="3.13.1")
    missing = f"file://{tmp_path}/no-such-clone"
    done = run_setup_cell(
        bare_python, CAPTION_HOST="kaggle", CAPTION_REPOSITORY=missing, PYTHONPATH=host
    )
    assert done.stdout == (
        f"On kaggle: installing the helpers package from {missing}; keeping "
        "tensorflow==2.20.0, keras==3.13.1.\n"
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(
        f"pip could not install the helpers package from {missing} (set "
        "CAPTION_REPOSITORY"
    )
    assert len(done.stderr.splitlines()) <= 8, done.stderr
    wrong = run_setup_cell(bare_python, CAPTION_HOST="binder")
    assert wrong.stderr == "CAPTION_HOST='binder': expected colab or kaggle\n"


def test_on_a_host_with_the_package_installed_the_setup_cell_stops_at_once(
    bare_python, tmp_path
):
    installed = fake_distributions(tmp_path, **{"captioning-helpers": "0.1.0"})
    (installed / "helpers").mkdir()
    (installed / "helpers" / "hosts.py").write_text("")
    for variable in ("COLAB_RELEASE_TAG", "CAPTION_HOST"):
        done = run_setup_cell(bare_python, PYTHONPATH=installed, **{variable: "colab"})
        assert done.returncode == 0, done.stderr
        assert done.stdout == (
            "On colab: the helpers package (captioning-helpers 0.1.0) is installed.\n"
        )
    done = run_setup_cell(bare_python, PYTHONPATH=installed, KAGGLE_KERNEL_RUN_TYPE="x")
    assert done.stdout.startswith("On kaggle: the helpers package")
