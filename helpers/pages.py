"""The executed notebooks as HTML pages that work offline (equations as MathML, recaps
without their code), and a run's index page: where to start, the results with their
caveat, the figures by what they show, and the other runs."""

from __future__ import annotations

import html
import itertools
import json
import re
from pathlib import Path

import nbformat
from jinja2 import DictLoader, pass_context
from latex2mathml.converter import convert
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from traitlets.config import Config as TraitletsConfig

from helpers.config import Config
from helpers.files import write_text_atomic
from helpers.metrics import HUMAN
from helpers.paths import artifacts_dir
from helpers.session import describe

# The lab template without what it fetches from the internet: require.js, MathJax and
# mermaid. Equations become MathML (`MathMLRenderer`), which browsers draw themselves.
OFFLINE_TEMPLATE = """{%- extends "lab/index.html.j2" -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


HIDE_INPUT = "hide-input"  # a code cell whose HTML copy shows its output alone


def mathml(latex: str, display: bool) -> str:
    """One equation as MathML; a line break inside it is a space."""
    return convert(" ".join(latex.split()), display="block" if display else "inline")


class MathMLRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer with the equations its parser found ($...$,
    $$...$$, wrapped across lines or not) written as MathML instead of left as LaTeX
    for MathJax. The parser leaves code spans and blocks alone."""

    def block_math(self, body: str) -> str:
        return mathml(body, display=True)

    def inline_math(self, body: str) -> str:
        return mathml(body, display=False)

    def latex_environment(self, name: str, body: str) -> str:
        return mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)


def markdown_to_html(markdown: str, **options) -> str:
    """A markdown cell as the HTML copies show it: equations as MathML."""
    renderer = MathMLRenderer(escape=False, **options)
    return MarkdownWithMath(renderer=renderer).render(markdown)


class OfflineHTMLExporter(HTMLExporter):
    """The HTML exporter with MathML equations in the markdown cells."""

    @pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        return markdown_to_html(
            source,
            attachments=cell.get("attachments", {}),
            embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links,
            **self.lexer_options,
        )


def is_progress_bar(output: dict) -> bool:
    """A tqdm widget: its saved text is the bar as it was first drawn ("0%| 0/800")."""
    data = output.get("data", {})
    return "application/vnd.jupyter.widget-view+json" in data and "%|" in "".join(
        data.get("text/plain", "")
    )


def export_html(notebook_path: Path) -> Path:
    """A self-contained HTML copy beside the executed notebook: images embedded,
    equations as MathML, nothing fetched from the internet, and the code of cells
    tagged `hide-input` (the recaps) left out."""
    notebook = nbformat.read(notebook_path, as_version=4)
    # Widgets need a live kernel (and scripts from the internet). Without their saved
    # state nbconvert falls back to the static picture in the same output; progress
    # bars, whose static text is their first state, are left out (a line after each
    # says how long it took).
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not is_progress_bar(o)]
    exporter = OfflineHTMLExporter(
        config=TraitletsConfig(TagRemovePreprocessor={"remove_input_tags": [HIDE_INPUT]}),
        extra_loaders=[DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})],
        template_file="offline.html.j2",
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(notebook)
    return write_text_atomic(notebook_path.with_suffix(".html"), body)


# Figure names start with their notebook's topic: the gallery follows the series.
FIGURE_ORDER = (
    "eda",
    "features",
    "tokenize",
    "train",
    "transformer",
    "decode",
    "evaluate",
    "finetune",
    "scst",
)


# What each figure shows, by the name a notebook saves it under (a number at the end
# is dropped: decode_attention_0 is the first of its kind).
FIGURE_TITLES = {
    "eda_splits": "Images per split",
    "eda_caption_length": "How long the captions are",
    "eda_word_frequency": "The most frequent words",
    "eda_vocabulary_coverage": "Vocabulary size and coverage by minimum count",
    "eda_examples": "Pictures with their five captions",
    "features_activation": "Where each grid cell differs from the average picture",
    "features_pretrained": "What a pretrained and a random network see",
    "tokenize_min_count": "Dev and test words the vocabulary knows, by minimum count",
    "tokenize_lengths": "Caption lengths and where they are cut",
    "train_loss": "Training and validation loss",
    "transformer_causal_mask": "The causal mask: the words each position may read",
    "transformer_loss": "The Transformer's training and validation loss",
    "transformer_attention_attention": "Where the LSTM looked, beside the Transformer",
    "transformer_attention_transformer": "Where the Transformer looked, word by word",
    "decode_beam_trace": "Beam search on one picture, step by step",
    "decode_greedy_vs_beam": "Greedy and beam-3 captions beside the references",
    "decode_attention": "Where the model looked, word by word",
    "evaluate_best": "The best-scored test captions",
    "evaluate_worst": "The worst-scored test captions",
    "evaluate_bleu_by_length": "BLEU-4 by caption length",
    "evaluate_wrong_relations": "Captions that say where things are",
    "finetune_changed": "Captions before and after fine-tuning",
    "finetune_attention": "Where the fine-tuned model looked",
    "scst_samples": "Sampled captions and their rewards",
    "scst_reward": "Self-critical training: reward and dev CIDEr-D by epoch",
    "scst_changed": "Captions that self-critical training changed",
}


def figure_order(path: Path) -> tuple[int, str]:
    topic = path.stem.split("_")[0]
    return (FIGURE_ORDER.index(topic) if topic in FIGURE_ORDER else 99, path.stem)


def figure_title(name: str) -> str:
    """What a saved figure shows, from its name; an unknown name in words."""
    kind, _, number = name.rpartition("_")
    if name not in FIGURE_TITLES and number.isdigit() and kind in FIGURE_TITLES:
        return f"{FIGURE_TITLES[kind]} ({int(number) + 1})"
    return FIGURE_TITLES.get(name, name.replace("_", " ").capitalize())


def notebook_line(notebook: dict) -> tuple[str, str]:
    """A notebook's title and the first sentence under it, as plain text."""
    first = next(c for c in notebook["cells"] if c["cell_type"] == "markdown")
    lines = "".join(first["source"]).splitlines()
    title = lines[0].lstrip("# ").strip()
    paragraph = " ".join(
        itertools.takewhile(bool, itertools.dropwhile(lambda x: not x, lines[1:]))
    )
    sentence = re.split(r"(?<=\.)\s", paragraph, maxsplit=1)[0]
    return title, re.sub(r"[*`]", "", sentence).removesuffix(":").rstrip(".") + "."


def html_table(rows: dict[str, dict], columns: list[str]) -> str:
    """An HTML table of {run: {column: value}}; a missing value is "n/a"."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["run", *columns])
    body = "".join(
        f"<tr><td>{html.escape(run)}</td>"
        + "".join(
            f"<td>{values[c]:.3f}</td>" if c in values else "<td>n/a</td>"
            for c in columns
        )
        + "</tr>"
        for run, values in rows.items()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def code_spans(text: str) -> str:
    """Plain text with Markdown's `code` spans, as HTML."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def results_html(out: Path) -> str:
    """This run's headline table (with people's agreement) and the line that says how
    far it compares with published numbers, then the published rows apart."""
    evaluation = out / "evaluation.json"
    if not evaluation.exists():
        return "<p>No evaluation yet: run notebook 06.</p>"
    content = json.loads(evaluation.read_text())
    columns = list(next(iter(content["table"].values())))
    rows = dict(content["table"])
    if "human" in content:
        rows[HUMAN] = content["human"]
    published = {
        run: dict(zip(columns, values)) for run, values in content["published"].items()
    }
    caveat = content.get(
        "comparable", "Whether the published rows compare with this run: see notebook 06."
    )
    return (
        f"<h2>The results: this run's test split, {content['test_images']} pictures "
        "(notebooks 06, 07 and 08)</h2>"
        + f"<p>{html.escape(content.get('split', ''))}</p>"
        + html_table(rows, columns)
        + f'<p class="caveat">{code_spans(caveat)}</p>'
        + "<h2>Published, for reference: Flickr8k's test split, real photographs "
        "(BLEU only)</h2>" + html_table(published, columns[:4])
    )


def other_runs(cfg: Config) -> list[str]:
    """The other profiles' runs under the artifacts folder that have a page."""
    here = artifacts_dir(cfg)
    return sorted(
        p.parent.name
        for p in here.parent.glob("*/index.html")
        if p.parent.name != here.name
    )


def write_index(cfg: Config, executed: list[Path]) -> Path:
    """artifacts/<profile>/index.html: where to start, one line per notebook, the
    results of this run with their caveat (and, apart, the published ones), the
    figures in notebook order by what they show, and the other runs."""
    out = artifacts_dir(cfg)
    items = []
    for path in executed:
        title, line = notebook_line(nbformat.read(path, as_version=4))
        items.append(
            f'<li><a href="executed/{path.stem}.html">{html.escape(title)}</a>: '
            f'{html.escape(line)} (<a href="executed/{path.name}">notebook</a>)</li>'
        )
    figures = "".join(
        f'<figure><a href="figures/{p.name}"><img src="figures/{p.name}" '
        f'alt="{html.escape(figure_title(p.stem))}"></a>'
        f"<figcaption>{html.escape(figure_title(p.stem))}</figcaption></figure>"
        for p in sorted((out / "figures").glob("*.png"), key=figure_order)
    )
    others = ", ".join(
        f'<a href="../{name}/index.html"><code>{html.escape(name)}</code></a>'
        for name in other_runs(cfg)
    )
    others = f"<p>Other runs here: {others}.</p>" if others else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Image captioning: {cfg.profile}</title>
<style>
 body {{ font-family: sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; }}
 table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
 td {{ text-align: right; }} td:first-child {{ text-align: left; }}
 figure {{ display: inline-block; margin: 4px; text-align: center; max-width: 15rem; }}
 img {{ height: 160px; max-width: 15rem; object-fit: contain; border: 1px solid #ddd; }}
 figcaption {{ font-size: 0.8rem; }}
 .caveat {{ font-style: italic; }}
</style></head><body>
<h1>Image captioning, profile <code>{html.escape(cfg.profile)}</code></h1>
<h2>Start here</h2>
<p>{html.escape(describe(cfg)).replace(chr(10), "<br>")}</p>
<p>Read the notebooks in order, each as it ran (every one reads what the earlier ones
wrote):</p>
<ol>{"".join(items)}</ol>
{others}
{results_html(out)}
<h2>Figures, in notebook order</h2><div>{figures}</div>
</body></html>
"""
    return write_text_atomic(out / "index.html", page)
