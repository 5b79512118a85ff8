# @title Setup on Colab or Kaggle (elsewhere it does nothing) { display-mode: "form" }
# On Colab or Kaggle (docs/hosted.md) this cell installs the series' `helpers` package
# from the repository, keeping the host's own TensorFlow, Keras and Jupyter; anywhere
# else it does nothing. Every notebook starts with this text: edit notebooks/setup_cell.py
# and run `python -m helpers.hosts`.
import importlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings

# Where pip gets the package: a pip/git URL; $CAPTION_REPOSITORY replaces it.
REPOSITORY = "git+https://example.invalid/image-captioning.git"  # set when published
PACKAGE = "captioning-helpers"
# The host's packages that pip must not replace: pinned to their installed versions.
HOST_PACKAGES = ("tensorflow", "keras", "ipykernel", "protobuf", "numpy", "ipywidgets")


def hosted_setup() -> None:
    """Install the helpers package on Colab or Kaggle, once per session."""
    host = os.environ.get("CAPTION_HOST")  # "colab" or "kaggle": as if there (tests)
    if host and host not in ("colab", "kaggle"):
        stop(f"CAPTION_HOST={host!r}: expected colab or kaggle")
    try:
        colab = importlib.util.find_spec("google.colab") is not None
    except ImportError:
        colab = False
    if not host and (colab or "COLAB_RELEASE_TAG" in os.environ):
        host = "colab"
    if not host and "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
        host = "kaggle"
    if not host:
        print("Not on Colab or Kaggle: using the installed helpers package.")
        return
    if ours_installed():
        version = importlib.metadata.version(PACKAGE)
        print(f"On {host}: the helpers package ({PACKAGE} {version}) is installed.")
        return
    source = os.environ.get("CAPTION_REPOSITORY") or REPOSITORY
    pins = []
    for name in HOST_PACKAGES:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    kept = f"; keeping {', '.join(pins)}" if pins else ""
    print(f"On {host}: installing the helpers package from {source}{kept}.")
    with tempfile.TemporaryDirectory() as folder:
        constraints = os.path.join(folder, "constraints.txt")
        with open(constraints, "w") as file:
            file.write("\n".join(pins) + "\n")
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
            + ["--no-input", "--progress-bar", "off", "--constraint", constraints]
            + [source],
            capture_output=True,
            text=True,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},  # never wait for a password
        )
    if pip.returncode != 0:
        tail = "\n".join((pip.stderr or pip.stdout).strip().splitlines()[-6:])
        stop(
            f"pip could not install the helpers package from {source} (set "
            f"CAPTION_REPOSITORY to the repository's pip or git URL):\n{tail}"
        )
    importlib.invalidate_caches()  # this kernel imports what pip just installed
    if not ours_installed():
        where = importlib.util.find_spec("helpers")
        stop(
            f"{PACKAGE} is installed but `import helpers` finds "
            f"{where.origin if where else 'nothing'}: restart the kernel and run again."
        )
    print(f"Installed {PACKAGE} {importlib.metadata.version(PACKAGE)}.")


def stop(message: str) -> None:
    """Stop the notebook with `message` alone, no traceback."""
    warnings.filterwarnings("ignore", "To exit")  # IPython's hint after a SystemExit
    raise SystemExit(message)


def ours_installed() -> bool:
    """Whether `import helpers` finds this series' package, installed by pip."""
    try:
        importlib.metadata.distribution(PACKAGE)
        spec = importlib.util.find_spec("helpers")
    except (importlib.metadata.PackageNotFoundError, ImportError):
        return False
    folders = (spec.submodule_search_locations or []) if spec else []
    return any(os.path.isfile(os.path.join(f, "hosts.py")) for f in folders)


hosted_setup()
