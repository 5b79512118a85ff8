"""`python -m helpers caption ...` and `python -m helpers serve ...`."""

import sys

from helpers.files import printable_output

USAGE = """usage: python -m helpers {caption,serve} ...

  caption IMAGE [IMAGE ...] --model BUNDLE   caption your own pictures
  serve --model BUNDLE                       a local web page to try the model
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("caption", "serve"):
        print(USAGE, file=sys.stderr)
        return 2
    printable_output()
    # Imported here, not at the top: the usage above is printed without TensorFlow.
    if argv[0] == "caption":
        from helpers.caption import main as command
    else:
        from helpers.app import main as command
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
