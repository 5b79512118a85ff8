"""Atomic writes and folder ownership: nothing we did not write is ever deleted."""

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
