"""python -m helpers.run: GPU profiles stop on a CPU and say how to go on, --set
overrides, and the series kernel starts without warnings."""

import subprocess

import nbformat
import pytest
import tensorflow as tf

from helpers import devices, paths, run
from helpers.config import get_config

pytestmark = pytest.mark.skipif(
    bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU"
)


def test_a_gpu_profile_stops_on_a_cpu_and_names_the_ways_on(monkeypatch, capsys):
    monkeypatch.delenv(devices.ALLOW_CPU, raising=False)
    monkeypatch.setenv("CAPTION_PROFILE", "flickr8k")
    assert run.main(["--check-device"]) == 2
    message = capsys.readouterr().err
    assert "sized for a GPU and TensorFlow sees none" in message
    assert "CAPTION_ALLOW_CPU=1" in message and "flickr8k-cpu" in message
    for profile in ("flickr8k-cpu", "sample", "ci"):
        assert devices.device_problem(get_config(profile)) is None
    monkeypatch.setenv(devices.ALLOW_CPU, "1")
    assert run.main(["--check-device"]) == 0


def test_make_flickr8k_checks_the_device_before_downloading():
    commands = subprocess.run(
        ["make", "-n", "flickr8k", "test-full"],
        cwd=paths.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    check = [i for i, c in enumerate(commands) if "--check-device" in c]
    download = commands.index(
        next(c for c in commands if "helpers.data download flickr8k" in c)
    )
    notebooks = [i for i, c in enumerate(commands) if "pytest notebooks/" in c]
    assert len(check) == 2 and check[0] < download and check[1] < notebooks[0]


def test_overrides_from_the_command_line_are_read_as_json_or_as_text():
    from helpers.run import parse_override

    assert parse_override("epochs=3") == ("epochs", 3)
    assert parse_override("data_dir=/data/Flickr8k") == ("data_dir", "/data/Flickr8k")
    assert parse_override("weights=null") == ("weights", None)
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_override("epochs")


def test_the_series_kernel_starts_without_the_unencrypted_tcp_warning(tmp_path, capfd):
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("print(6 * 7)")],
        metadata={"kernelspec": {"name": run.KERNEL_NAME, "display_name": "c"}},
    )
    nbformat.write(notebook, tmp_path / "answer.ipynb")
    (tmp_path / "executed").mkdir()
    assert run.run_notebook(tmp_path / "answer.ipynb", tmp_path / "executed") == 0
    executed = nbformat.read(tmp_path / "executed" / "answer.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "42\n"
    assert (tmp_path / "executed" / "answer.html").exists()
    assert "without encryption" not in capfd.readouterr().err


def test_set_given_twice_applies_both(monkeypatch):
    seen = {}

    def spy(**overrides):
        seen.update(overrides)
        return get_config("ci", **overrides)

    monkeypatch.setattr(run, "get_config", spy)
    argv = ["--set", "epochs=3", "--set", "seed=5", "batch_size=8", "--check-device"]
    assert run.main(argv) == 0
    assert seen == {"epochs": 3, "seed": 5, "batch_size": 8}
