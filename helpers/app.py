"""A small local web page to try the model: upload a photo, read the caption, see where
the model looked for each word.

    python -m helpers serve --model artifacts/sample/bundle [--kind scst attention]
                            [--port 8000]

Every decoder of the bundle (or those `--kind` names) is offered on the page, over
one shared encoder: the same photo can be captioned by each in turn.

Flask, because the page is one form and one result: a few dozen lines, no JavaScript
build, no assets fetched from the internet, and Werkzeug's test client for fast tests.
It listens on 127.0.0.1 unless told otherwise, and refuses uploads over the size limit
and files that are not images, with a message.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import sys
import threading

from flask import Flask, jsonify, request
from PIL import Image

from helpers.bundle import KINDS

LABELS = {  # the page's names for the decoder kinds of a bundle
    "scst": "attention, self-critical (CIDEr-D)",
    "attention": "attention, cross-entropy",
    "merge": "merge, no attention",
}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Image captioning</title>
<style>
 body {{ font-family: sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }}
 .caption {{ font-size: 1.4rem; margin: 1rem 0; }}
 .error {{ color: #b00020; font-weight: bold; }}
 .note {{ background: #fff4ce; padding: 0.5rem; }}
 img {{ max-width: 100%; }}
</style></head>
<body>
<h1>Image captioning</h1>
<form method="post" action="/" enctype="multipart/form-data">
 <input type="file" name="image" accept="image/*" required>
 {models}
 {widths}
 <button type="submit">Caption it</button>
</form>
<p><small>Encoder: {encoder}. Uploads up to {limit} MB.</small></p>
{note}
{result}
</body></html>"""


class Busy(Exception):
    """Every captioning turn stayed taken for WAIT_SECONDS."""


BUSY = "The captioner is busy with other pictures; try again in a moment."
# How many uploads are decoded and captioned at once (Flask serves each request on its
# own thread), and how long a request waits for its turn before "busy" (HTTP 503).
CONCURRENT_CAPTIONS = 2
WAIT_SECONDS = 30


def create_app(
    captioners: list, max_upload_mb: float = 8.0, concurrent: int = CONCURRENT_CAPTIONS
) -> Flask:
    """The Flask app around `helpers.caption.Captioner`s of one bundle, one per decoder
    kind (`helpers.caption.captioners`); the first is the page's default.

    Uploads are checked in layers: Flask refuses a body over the size limit (413),
    `features.load_image` refuses formats we do not list and pictures over its pixel
    limit (400), and at most `concurrent` uploads are decoded and captioned at once
    (503 after WAIT_SECONDS), so memory stays bounded whatever people send.
    """
    from helpers import features, viz

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 2**20)
    turns = threading.BoundedSemaphore(concurrent)
    by_kind = {c.kind: c for c in captioners}
    captioner = captioners[0]  # the bundle's encoder, config and note are theirs
    encoder = captioner.bundle.encoder
    description = (
        f"{encoder['encoder']} {encoder['layer']} ({encoder['weights']} weights"
        f"{', fine-tuned' if encoder['tuned_layers'] else ''})"
    )

    note = (
        f'<p class="note" id="note">{html.escape(captioner.note)}</p>'
        if captioner.note
        else ""
    )

    # Greedy and two beam widths, with the bundle's own beam width chosen by default.
    default = captioner.bundle.config.beam_width
    widths = sorted({1, 3, 5, default})

    def page(result="", status=200, kind=captioner.kind, beam=default):
        """The page; its menus keep the decoder and beam width last chosen."""
        body = PAGE.format(
            models=menu("model", {k: LABELS[k] for k in by_kind}, kind),
            widths=menu(
                "decoding",
                {k: "greedy" if k == 1 else f"beam search, k = {k}" for k in widths},
                beam,
            ),
            encoder=html.escape(description),
            note=note,
            limit=f"{max_upload_mb:g}",
            result=result,
        )
        return body, status, {"Content-Type": "text/html; charset=utf-8"}

    def error(message: str, status: int):
        return page(f'<p class="error" id="error">{html.escape(message)}</p>', status)

    def caption_upload():
        """(result dict, picture, file name, (decoder kind, beam width)) for the
        uploaded file, or raise ValueError."""
        upload = request.files.get("image")
        if upload is None or not upload.filename:
            raise ValueError("no file was uploaded")
        try:
            beam = int(request.form.get("decoding", default))
        except ValueError:
            beam = None
        if beam not in widths:
            raise ValueError(f"decoding must be one of {widths}")
        kind = request.form.get("model", captioner.kind)
        if kind not in by_kind:
            raise ValueError(f"model must be one of {list(by_kind)}")
        if not turns.acquire(timeout=WAIT_SECONDS):
            raise Busy()
        try:
            picture = decode(upload)
            result = by_kind[kind].caption_pictures([picture], beam)[0]
        finally:
            turns.release()
        return result, picture, upload.filename, (kind, beam)

    def decode(upload):
        try:
            return features.load_image(io.BytesIO(upload.read()), captioner.image_size)
        except ValueError as problem:
            raise ValueError(
                f"{upload.filename} is not an image we can read: {problem}"
            ) from None

    @app.get("/")
    def index():
        return page()

    @app.post("/")
    def caption():
        try:
            result, picture, name, (kind, beam) = caption_upload()
        except ValueError as problem:
            return error(str(problem), 400)
        except Busy:
            return error(BUSY, 503)
        if result["attention"].any():
            figure = viz.attention_figure(
                Image.fromarray(picture), result["words"], result["attention"]
            )
            shown = 'id="attention" alt="attention for each word"'
        else:  # a merge decoder: no attention to show, the picture alone
            figure = viz.attention_figure(Image.fromarray(picture), [], [], columns=1)
            shown = 'id="picture" alt="the picture"'
        image = base64.b64encode(viz.figure_png(figure, dpi=80)).decode()
        return page(
            f"<p>{html.escape(name)}, {LABELS[kind]} decoder:</p>"
            f'<p class="caption" id="caption">'
            f"{html.escape(result['text'])}</p>"
            f'<img {shown} src="data:image/png;base64,{image}">',
            kind=kind,
            beam=beam,
        )

    @app.post("/api/caption")
    def api():
        try:
            result, _, name, (kind, _) = caption_upload()
        except ValueError as problem:
            return jsonify(error=str(problem)), 400
        except Busy:
            return jsonify(error=BUSY), 503
        return jsonify(
            image=name,
            model=kind,
            caption=result["text"],
            words=result["words"],
            score=result["score"],
            attention=result["attention"].tolist(),
        )

    @app.errorhandler(413)
    def too_large(_):
        return error(
            f"The file is larger than the {max_upload_mb:g} MB upload limit.", 413
        )

    return app


def menu(name: str, choices: dict, chosen) -> str:
    """A <select> of `choices` ({value: label}) with `chosen` selected."""
    options = "".join(
        f'<option value="{v}"{" selected" if v == chosen else ""}>{label}</option>'
        for v, label in choices.items()
    )
    return f'<select name="{name}">{options}</select>'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="bundle folder")
    parser.add_argument(
        "--kind",
        nargs="+",
        choices=KINDS,
        help="the decoders to offer, the first by default (default: every one in "
        "the bundle, self-critical first)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1 keeps it local")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=8.0)
    parser.add_argument("--weights", help="the encoder's weights file, if it used one")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # figures are drawn on request threads: no GUI backend
    from helpers.caption import captioners

    try:
        loaded = captioners(args.model, args.kind, args.weights)
    except (OSError, ValueError, RuntimeError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"Open http://{args.host}:{args.port}/ (Ctrl+C stops)")
    app = create_app(loaded, args.max_upload_mb)
    app.run(
        host=args.host, port=args.port, debug=False
    )  # never the debugger: it runs code
    return 0


if __name__ == "__main__":
    sys.exit(main())
