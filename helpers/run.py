"""Run the whole notebook series in order with papermill.

    CAPTION_PROFILE=sample python -m helpers.run [--only 01 02]

Executed copies go to artifacts/<profile>/executed/; the profile comes from
$CAPTION_PROFILE as in the notebooks themselves.
"""

from __future__ import annotations

import argparse
import sys
import time

from helpers.config import get_config
from helpers.paths import NOTEBOOKS, artifacts_dir


def main(argv: list[str] | None = None) -> int:
    import papermill

    parser = argparse.ArgumentParser(prog="python -m helpers.run", description=__doc__)
    parser.add_argument(
        "--only", nargs="*", default=None, help="notebook number prefixes"
    )
    args = parser.parse_args(argv)
    cfg = get_config()
    executed = artifacts_dir(cfg) / "executed"
    executed.mkdir(exist_ok=True)
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.only]
    if not notebooks:
        print(f"error: no notebooks to run in {NOTEBOOKS}", file=sys.stderr)
        return 2
    for notebook in notebooks:
        start = time.time()
        print(f"== {notebook.name} ({cfg.profile})", flush=True)
        papermill.execute_notebook(
            notebook, executed / notebook.name, cwd=NOTEBOOKS, progress_bar=False
        )
        print(f"   done in {time.time() - start:.0f} s -> {executed / notebook.name}")
    print(f"Artifacts are in {artifacts_dir(cfg)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
