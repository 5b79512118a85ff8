"""Small helper package shared by the image-captioning notebooks."""

import os
import re
import sys
import tempfile

# Keras 3 reads its backend once, at its first import: every module of the package
# imports keras after this line has run.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Native log lines from before absl logging is set up: "I0000 00:00:17... port.cc:153]".
NATIVE_LOG = re.compile(r"([IWEF])0000 \d\d:\d\d:")
ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called"


def native_lines_kept(text: str, level: int) -> str:
    """The lines of `text` that TF_CPP_MIN_LOG_LEVEL=`level` lets through: native
    log lines below the level (0 INFO, 1 WARNING, 2 ERROR) and, from 1 on, absl's
    banner go; everything else stays."""
    kept = []
    for line in text.splitlines(keepends=True):
        native = NATIVE_LOG.match(line)
        if native and "IWEF".index(native[1]) < level:
            continue
        if line.startswith(ABSL_BANNER) and level >= 1:
            continue
        kept.append(line)
    return "".join(kept)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its start-up log lines filtered by TF_CPP_MIN_LOG_LEVEL.

    Its C++ libraries log at import ("oneDNN custom operations are on", "Could not find
    cuda drivers") before absl logging is set up, so the variable does not stop them,
    and a Jupyter kernel shows them under the first cell of every notebook. They are
    written to a temporary file here and the lines the level allows are shown after.
    """
    level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL") or 0)
    if level == 0 or "tensorflow" in sys.modules:
        return
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            sys.stderr.write(
                native_lines_kept(log.read().decode(errors="replace"), level)
            )


# The commands that load TensorFlow (`python -m helpers caption|serve`, `helpers.run`,
# `helpers.features`, `helpers.report`) keep its start-up lines out of the user's
# terminal, unless the user set the level: what they print first is theirs.
COMMANDS = ("helpers", "helpers.run", "helpers.features", "helpers.report")


def command() -> str | None:
    """The module run with `python -m`, while this package is imported for it."""
    argv = getattr(sys, "orig_argv", [])
    if sys.argv[:1] != ["-m"] or "-m" not in argv[:-1]:
        return None
    return argv[argv.index("-m") + 1]


if command() in COMMANDS:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if "ipykernel" in sys.modules or command() in COMMANDS:
    import_tensorflow_quietly()  # in a script the lines go to a terminal, as usual
