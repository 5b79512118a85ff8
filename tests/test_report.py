"""The tables of measured numbers in the README and docs/ are what their JSON gives."""

import json
import shutil

import pytest

from helpers import report


def rows(table: str) -> list[list[str]]:
    return [line.strip("|").split("|") for line in table.strip().splitlines()]


@pytest.mark.parametrize("path", report.DOCUMENTS, ids=lambda p: p.name)
def test_every_table_is_what_its_json_gives_and_parses(path):
    for name, table in report.tables(path.read_text()).items():
        assert name in report.RENDERERS, f"{path.name}: no renderer for {name}"
        assert table == report.render(name), f"{path.name}: run `make report` ({name})"
        widths = {len(row) for row in rows(table)}
        assert len(widths) == 1 and len(rows(table)) > 2, f"{path.name}: {name}"


def test_every_json_a_table_names_is_committed():
    named = {source for source, _ in report.RENDERERS.values() if source}
    assert {p.name for p in report.RESULTS.glob("*.json")} >= named


def test_a_new_run_rewrites_the_table(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(report.RESULTS, results)
    document = tmp_path / "doc.md"
    document.write_text(
        "before\n<!-- table: sample -->\nold\n<!-- end table -->\nafter\n"
    )
    assert report.rewrite(document, results)
    assert report.tables(document.read_text())["sample"] == report.render(
        "sample", results
    )
    data = json.loads((results / "sample.json").read_text())
    run = next(iter(data["evaluation"]["table"]))
    data["evaluation"]["table"][run]["bleu4"] = 0.123456
    (results / "sample.json").write_text(json.dumps(data))
    assert report.rewrite(document, results) and "| 0.123 |" in document.read_text()
    assert not report.rewrite(document, results)  # nothing changed: nothing written


def test_the_notebook_total_counts_the_notebooks():
    run = {f"0{i}_x": 60 for i in range(1, 10)}
    table = rows(report.notebook_times({"run": run}))
    assert [cell.strip() for cell in table[-1]] == ["all 9", "9.0"]
    assert len(table) == 2 + 9 + 1


def test_real_photos_short_shows_the_median_of_the_seeds_of_a_run():
    def row(cider):
        return {"bleu4": 0.1, "cider": cider, "bad_endings": 0.0}

    table = {
        f"transformer (seed {seed}), beam {k}": row(cider)
        for seed, cider in ((1234, 0.1), (1, 0.2), (2, 0.6))
        for k in (1, 3)
    }
    table["transformer (median of 3 seeds), beam 1"] = row(0.15)
    table["transformer (median of 3 seeds), beam 3"] = row(0.2)
    table["human (one caption vs the other four)"] = row(0.8)
    table["attention + SCST (seed 1234), beam 3"] = row(0.4)
    text = report.real_photos_short({"photos": {"dev": 113}, "table": table})
    runs = {cells[0].strip(): cells[2].strip() for cells in rows(text)[2:]}
    assert runs == {
        "transformer": "0.200",
        "human (one caption vs the other four)": "0.800",
        "attention + SCST (seed 1234)": "0.400",
    }
    assert "median of 3 seeds" in rows(text)[0][0]


def test_the_real_photos_numbers_are_copied_without_captions_or_paths(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(report, "ARTIFACTS", tmp_path / "artifacts")
    assert report.collect_real_photos(tmp_path / "results") == []
    run = tmp_path / "artifacts" / "real-photos" / "top_activation"
    run.mkdir(parents=True)
    data = {"data": "/home/me/flickr8k-subset", "table": {}, "examples": {"a.jpg": {}}}
    (run / "real_photos.json").write_text(json.dumps(data))
    [copied] = report.collect_real_photos(tmp_path / "results")
    assert json.loads(copied.read_text()) == {"data": "flickr8k-subset", "table": {}}
