"""The tables of measured numbers in the README and docs/, written from JSON by a command.

    python -m helpers.report            # rewrite every table from docs/results/*.json
    python -m helpers.report --collect  # first copy the latest runs' numbers there

A table sits between `<!-- table: NAME -->` and `<!-- end table -->` in a Markdown
file; NAME picks its renderer below and the JSON it reads. The numbers travel with the
repository in docs/results/ (only numbers and our own model's captions: never a
photograph or a reference caption), so a test can check that every committed table is
what its JSON gives, and a diff shows what a new run changed.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

from PIL import Image

from helpers.config import PRESETS
from helpers.encoders import ENCODERS
from helpers.files import (
    read_json,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from helpers.paths import ARTIFACTS, ROOT

RESULTS = ROOT / "docs" / "results"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TABLE = re.compile(r"(<!-- table: ([\w-]+) -->\n)(.*?)(<!-- end table -->)", re.DOTALL)
METRICS = {
    "bleu1": "BLEU-1",
    "bleu4": "BLEU-4",
    "cider": "CIDEr-D",
    "rouge_l": "ROUGE-L",
    "meteor": "METEOR",
}
QUALITY = {
    "distinct": "distinct",
    "bad_endings": "bad endings",
    "repeated_trigrams": "repeated trigrams",
}


def markdown(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats with three decimals."""

    def cell(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = [header, ["---"] * len(header), *[[cell(v) for v in row] for row in rows]]
    return "".join("| " + " | ".join(line) + " |\n" for line in lines)


def metric_table(table: dict[str, dict], quality: bool = False) -> str:
    """{run: {metric: value}} as a table of the metrics the runs have."""
    first = next(iter(table.values()))
    columns = [m for m in METRICS if m in first]
    extra = [q for q in QUALITY if quality and q in first]
    header = ["run", *(METRICS[m] for m in columns), *(QUALITY[q] for q in extra)]
    rows = []
    for run, values in table.items():
        shares = [f"{values[q]:.0%}" if q != "distinct" else values[q] for q in extra]
        rows.append([run, *(values[m] for m in columns), *shares])
    return markdown(header, rows)


def evaluation(data: dict) -> str:
    return metric_table(data["evaluation"]["table"])


def published(data: dict) -> str:
    rows = [[run, *values] for run, values in data["evaluation"]["published"].items()]
    return markdown(
        ["published (Flickr8k test split)", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"], rows
    )


def real_photos(data: dict) -> str:
    return metric_table(data["table"], quality=True)


SEED = re.compile(r" \(seed \d+\)")
MEDIAN = re.compile(r" \(median of (\d+) seeds\)")


def seed_medians(table: dict[str, dict], decoding: str = ", beam 3") -> dict:
    """{run: row} of the median rows (over seeds) of one decoding setting."""
    return {
        MEDIAN.sub("", label).removesuffix(decoding): row
        for label, row in table.items()
        if MEDIAN.search(label)
        and MEDIAN.sub("", label).endswith(decoding)
        and "no repeated trigram" not in label
    }


def real_photos_short(data: dict) -> str:
    """The beam-3 rows (and the human ceiling) with the metrics a reader needs; of a
    run trained with several seeds, only the row of their medians."""
    table = data["table"]
    medians = {
        MEDIAN.sub("", run): int(m[1]) for run in table if (m := MEDIAN.search(run))
    }
    rows = [
        [MEDIAN.sub("", run).removesuffix(", beam 3"), v["bleu4"], v["cider"]]
        + [f"{v['bad_endings']:.0%}"]
        for run, v in table.items()
        if run.startswith("human")
        or (
            run.endswith(", beam 3")
            and "no repeated trigram" not in run
            and SEED.sub("", run) not in medians
        )
    ]
    scored = f"{data['photos']['dev']} dev photos, beam 3"
    if medians:
        scored += f", median of {max(medians.values())} seeds"
    return markdown([scored, "BLEU-4", "CIDEr-D", "bad endings"], rows)


RUN_BY = {
    "ci": "`make test`",
    "sample": "`make demo`",
    "flickr8k": "`make flickr8k`",
    "gpu": "`make test-gpu`",
    "flickr8k-cpu": "`make flickr8k FLICKR8K_PROFILE=flickr8k-cpu`",
}


def profiles(_: dict) -> str:
    """The presets, from helpers/config.py itself."""
    rows = []
    for name, cfg in PRESETS.items():
        data = (
            f"{cfg.sample_images} generated pictures"
            if cfg.sample_images
            else cfg.data_dir
        )
        weights = "random" if cfg.weights is None else cfg.weights
        run_by = RUN_BY.get(name, f"`CAPTION_PROFILE={name}`")
        device = "GPU" if cfg.needs_gpu else "CPU"
        rows.append(
            [
                f"`{name}`",
                data,
                f"{cfg.encoder}, {weights}",
                cfg.units,
                cfg.epochs,
                f"{run_by} ({device})",
            ]
        )
    header = ["profile", "data", "encoder", "LSTM units", "epochs", "run by"]
    return markdown(header, rows)


def notebook_times(data: dict) -> str:
    rows = [[name, f"{seconds / 60:.1f}"] for name, seconds in data["run"].items()]
    total = sum(data["run"].values())
    total_row = [f"all {len(rows)}", f"{total / 60:.1f}"]
    return markdown(["notebook", "minutes"], [*rows, total_row])


def scale(data: dict) -> str:
    header = ["profile", "encoder grid", *data["stages"], "total minutes"]
    rows = [
        [r["profile"], r["grid"], *(f"{m:.0f}" for m in r["minutes"].values())]
        for r in data["profiles"]
    ]
    return markdown(header, rows)


# NAME -> (the JSON in docs/results it reads, the renderer)
RENDERERS = {
    "sample": ("sample.json", evaluation),
    "sample-times": ("sample.json", notebook_times),
    "ci": ("ci.json", evaluation),
    "published": ("sample.json", published),
    "real-photos": ("real_photos.json", real_photos),
    "real-photos-short": ("real_photos.json", real_photos_short),
    "profiles": (None, profiles),
    "flickr8k-scale": ("flickr8k_scale.json", scale),
}


def render(name: str, results: Path = RESULTS) -> str:
    """The table NAME as its JSON gives it."""
    source, renderer = RENDERERS[name]
    return renderer(read_json(results / source) if source else {})


def tables(text: str) -> dict[str, str]:
    """The tables of a Markdown text, by name."""
    return {m[2]: m[3] for m in TABLE.finditer(text)}


def rewrite(path: Path, results: Path = RESULTS) -> bool:
    """Rewrite the tables of one document; whether anything changed."""
    text = path.read_text()
    new = TABLE.sub(lambda m: m[1] + render(m[2], results) + m[4], text)
    if new != text:
        write_text_atomic(path, new)
    return new != text


def collect_real_photos(results: Path = RESULTS) -> list[Path]:
    """Copy the numbers of benchmarks/real_photos.py (its default grid, the flickr8k-cpu
    encoder's), if it has run, without the captions of the photos."""
    real = ARTIFACTS / "real-photos" / ENCODERS["efficientnet_lite0"].layer
    if not (real / "real_photos.json").exists():
        return []
    data = read_json(real / "real_photos.json")
    data.pop("examples", None)  # captions of the photos stay out of the repository
    data["data"] = Path(data["data"]).name  # not the path on the machine that ran it
    return [write_json_atomic(results / "real_photos.json", data)]


def collect(results: Path = RESULTS) -> list[Path]:
    """Copy the numbers of the latest runs (what exists of them) into `results`."""
    written = []
    sample, ci = ARTIFACTS / "sample", ARTIFACTS / "ci"
    for name, folder in (("sample.json", sample), ("ci.json", ci)):
        if (folder / "evaluation.json").exists():
            data = {"evaluation": read_json(folder / "evaluation.json")}
            if (folder / "run.json").exists():
                data["run"] = read_json(folder / "run.json")
            written.append(write_json_atomic(results / name, data))
    written += collect_real_photos(results)
    figure = sample / "figures" / "decode_attention_0.png"  # the README's figure
    if figure.exists():
        with Image.open(figure) as picture:
            picture.thumbnail((720, 720))
            buffer = io.BytesIO()
            picture.save(buffer, "PNG", optimize=True)
        written.append(
            write_bytes_atomic(
                ROOT / "docs" / "images" / "attention.png", buffer.getvalue()
            )
        )
    scale_json = ARTIFACTS / "benchmarks" / "flickr8k_scale.json"
    if scale_json.exists():
        written.append(
            write_json_atomic(results / "flickr8k_scale.json", read_json(scale_json))
        )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.report", description=__doc__)
    parser.add_argument(
        "--collect", action="store_true", help="copy the runs' numbers first"
    )
    args = parser.parse_args(argv)
    if args.collect:
        for path in collect():
            print(f"collected {path.relative_to(ROOT)}")
    for path in DOCUMENTS:
        if rewrite(path):
            print(f"rewrote the tables of {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
