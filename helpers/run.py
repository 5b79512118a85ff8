"""Run the whole notebook series in order with papermill, and render it to read.

    CAPTION_PROFILE=sample python -m helpers.run [--only 01 02]
    python -m helpers.run --register-kernel     # only register the Jupyter kernel

Executed copies go to artifacts/<profile>/executed/, each also as a self-contained
HTML file (images embedded), with artifacts/<profile>/index.html linking them beside
the headline table. A notebook whose drawing cells show no image fails the run: a
figure that is only saved to disk is a figure the reader never sees.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import time
from pathlib import Path

import nbformat
import papermill
import zmq
from ipykernel.kernelspec import install
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import AsyncKernelManager

from helpers import devices, maps, viz
from helpers.config import get_config
from helpers.files import read_json, write_json_atomic
from helpers.pages import export_html, write_index
from helpers.paths import NOTEBOOKS, artifacts_dir
from helpers.session import describe

RUN = "run.json"  # seconds each notebook took in its last run (helpers.report reads it)
KERNEL_NAME = "captioning"  # the kernelspec named in every notebook's metadata
KERNEL_DISPLAY_NAME = "Python (captioning)"
# The functions that make a figure (viz, maps): a cell calling one must show an image.
DRAWING = sorted(
    f"{module.__name__.split('.')[-1]}\\.{name}"
    for module in (viz, maps)
    for name, function in inspect.getmembers(module, inspect.isfunction)
    if "Figure" in str(function.__annotations__.get("return", ""))
    and name[0] != "_"
    and function.__module__ == module.__name__
)
DRAWS = re.compile(r"\b(" + "|".join(DRAWING) + r"|Explorer)\(")


def ensure_kernel() -> str:
    """Register this environment's Python as the `captioning` Jupyter kernel, once."""
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return spec.resource_dir
    except NoSuchKernel:
        pass
    return install(
        kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME, prefix=sys.prefix
    )


def image_outputs(cell: dict) -> int:
    """How many PNG images a code cell shows."""
    return sum(
        "image/png" in output.get("data", {}) for output in cell.get("outputs", [])
    )


def cells_missing_figures(notebook: dict) -> list[int]:
    """Indices of code cells that draw (call a figure helper) but show no image."""
    return [
        index
        for index, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code"
        and DRAWS.search("".join(cell["source"]))
        and not image_outputs(cell)
    ]


class KernelManager(AsyncKernelManager):
    """A kernel with CurveZMQ keys (its kernelspec declares support): over plain TCP,
    ipykernel warns at every start that the kernel runs without encryption."""

    def __init__(self, **kwargs):
        encryption = "auto" if zmq.has("curve") else "disabled"
        super().__init__(transport_encryption=encryption, **kwargs)


def run_notebook(notebook: Path, executed: Path, parameters: dict | None = None) -> int:
    """Execute one notebook with papermill, check it shows its figures, render HTML.

    Returns the number of images it shows; raises RuntimeError naming the cells that
    draw without showing.
    """
    ensure_kernel()
    target = executed / notebook.name
    papermill.execute_notebook(
        notebook,
        target,
        parameters=parameters or {},
        cwd=NOTEBOOKS,
        progress_bar=False,
        kernel_manager_class=KernelManager,
    )
    content = nbformat.read(target, as_version=4)
    missing = cells_missing_figures(content)
    if missing:
        raise RuntimeError(
            f"{target}: cells {missing} draw a figure but show no image in the notebook"
        )
    export_html(target)
    return sum(image_outputs(cell) for cell in content["cells"])


def parse_override(item: str) -> tuple[str, object]:
    """FIELD=VALUE with VALUE read as JSON when it is JSON (3, 0.5, true, null), else
    as a string (a path)."""
    field, equals, value = item.partition("=")
    if not equals:
        raise ValueError(f"--set {item}: expected FIELD=VALUE")
    try:
        return field, json.loads(value)
    except json.JSONDecodeError:
        return field, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.run", description=__doc__)
    parser.add_argument(
        "--only", nargs="*", default=None, help="notebook number prefixes"
    )
    parser.add_argument(
        "--register-kernel", action="store_true", help="only register the Jupyter kernel"
    )
    parser.add_argument(
        "--check-device",
        action="store_true",
        help="only check that the profile's device is here (a GPU for flickr8k)",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        action="extend",
        default=[],
        metavar="FIELD=VALUE",
        help="config overrides for every notebook, e.g. data_dir=/data/Flickr8k epochs=3 "
        "(--set may be given several times: all of them apply)",
    )
    args = parser.parse_args(argv)
    try:
        overrides = dict(parse_override(item) for item in args.set)
        cfg = get_config(**overrides)
    except ValueError as error:
        parser.error(str(error))
    if args.register_kernel:  # at install time: needs neither a profile nor a GPU
        print(f"Jupyter kernel {KERNEL_NAME!r}: {ensure_kernel()}")
        return 0
    if not NOTEBOOKS.is_dir():
        print(
            f"error: no notebooks folder at {NOTEBOOKS}: helpers.run runs the notebooks "
            "of a checkout of the repository (git clone it and run it there)",
            file=sys.stderr,
        )
        return 2
    problem = devices.device_problem(cfg)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.check_device:
        return 0
    print(f"Jupyter kernel {KERNEL_NAME!r}: {ensure_kernel()}")
    executed = artifacts_dir(cfg) / "executed"
    executed.mkdir(exist_ok=True)
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name.startswith(tuple(args.only))]
    if not notebooks:
        print(f"error: no notebooks to run in {NOTEBOOKS}", file=sys.stderr)
        return 2
    print(describe(cfg))
    times = (
        read_json(artifacts_dir(cfg) / RUN) if (artifacts_dir(cfg) / RUN).exists() else {}
    )
    for notebook in notebooks:
        start = time.time()
        print(f"== {notebook.name} ({cfg.profile})", flush=True)
        images = run_notebook(notebook, executed, {"overrides": overrides})
        times[notebook.stem] = round(time.time() - start)
        print(f"   {times[notebook.stem]} s, {images} figures shown -> {executed}")
        write_json_atomic(artifacts_dir(cfg) / RUN, times)  # seconds per notebook
    done = sorted(executed.glob("[0-9][0-9]*_*.ipynb"))
    print(f"Read the results: {write_index(cfg, done)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
