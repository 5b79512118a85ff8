"""Atomic writes and folder ownership: nothing we did not write is ever deleted."""

import os
import time

import pytest

from helpers import files, sample


def test_a_staged_folder_replaces_ours_at_once_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    for text in ("old", "new"):
        with files.staged(target) as staging:
            (staging / "result.txt").write_text(text)
    assert (target / "result.txt").read_text() == "new"
    with pytest.raises(KeyboardInterrupt), files.staged(target) as staging:
        (staging / "result.txt").write_text("half")
        raise KeyboardInterrupt
    assert (target / "result.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no staging left"


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_what_is_not_ours_is_refused_and_kept(tmp_path, kind):
    target = tmp_path / "theirs"
    if kind == "folder":
        target.mkdir()
        (target / "thesis.tex").write_text("years of work")
    else:
        target.write_text("years of work")
    with pytest.raises(ValueError, match="left alone"), files.staged(target):
        pass
    with pytest.raises(ValueError, match="left alone"):
        files.remove_folder(target, "a test")
    with pytest.raises(ValueError, match="left alone"):
        sample.write_sample(target, 8)
    assert (
        "years of work"
        in ((target / "thesis.tex") if kind == "folder" else target).read_text()
    )


def test_an_empty_folder_is_adopted_and_a_claimed_one_can_be_removed(tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    files.claim_folder(folder)
    (folder / "log.csv").write_text("epoch\n")
    files.remove_folder(folder, "the stale run")
    assert not folder.exists()
    assert "removing the stale run" in capsys.readouterr().err


def test_atomic_json_round_trip_and_bad_json_is_named(tmp_path):
    path = files.write_json_atomic(tmp_path / "a.json", {"x": [1, 2]})
    assert files.read_json(path) == {"x": [1, 2]}
    path.write_text('{"x": \n[1, 2')
    with pytest.raises(ValueError, match=r"a\.json:2: not valid JSON"):
        files.read_json(path)


def test_a_killed_save_leaves_nothing_behind_and_results_are_shared(tmp_path):
    target = tmp_path / "bundle"
    killed = tmp_path / ".bundle.x7k2"  # what a kill inside `staged` leaves
    killed.mkdir()
    (killed / files.OWNED).touch()
    theirs = tmp_path / ".bundle.notes"  # not ours: kept
    theirs.mkdir()
    hour_ago = time.time() - 3600
    for folder in (killed, theirs):
        os.utime(folder, (hour_ago, hour_ago))
    live = tmp_path / ".bundle.live"  # another job staging right now: kept
    live.mkdir()
    (live / files.OWNED).touch()
    with files.staged(target) as staging:
        (staging / "a.txt").write_text("a")
    assert not killed.exists() and theirs.exists() and live.exists()
    assert oct(target.stat().st_mode & 0o777) == "0o755"


def test_a_json_nested_too_deeply_or_not_a_file_is_named(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="deep.json: JSON nested too deeply"):
        files.read_json(deep)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe.json: is not a regular file"):
        files.read_json(fifo)  # would block forever if it were opened for reading
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="zero.json: is not a regular file"):
        files.read_json(tmp_path / "zero.json")
