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
