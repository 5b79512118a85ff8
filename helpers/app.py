"""A small local web page to try the model: upload a photo, read the caption, see where
the model looked for each word.

    python -m helpers serve --model artifacts/sample/bundle [--kind scst attention]
                            [--port 8000]

Every decoder of the bundle (or those `--kind` names) is offered on the page, over
one shared encoder: the same photo can be captioned by each in turn.

Flask, because the page is one form and one result: a few dozen lines, no JavaScript
build, no assets fetched from the internet, and Werkzeug's test client for fast tests.
It listens on 127.0.0.1 unless told otherwise, refuses uploads over the size limit
and files that are not images, with a message, and serves through `helpers.server`
(deadlines and a bound on connections for slow clients).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import os
import sys
import threading

import matplotlib
from flask import Flask, jsonify, request
from PIL import Image
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from helpers import images, maps, viz
from helpers.caption import captioners
from helpers.model import KINDS
from helpers.server import listen, serve

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
MAX_UPLOAD_MB = 100  # --max-upload-mb: more is not a picture anyone should send


class CaptionPage:
    """The page and the API around `helpers.caption.Captioner`s of one bundle, one
    per decoder kind (`helpers.caption.captioners`); the first is the default."""

    def __init__(self, captioners: list, max_upload_mb: float, concurrent: int):
        self.by_kind = {c.kind: c for c in captioners}
        self.captioner = captioners[0]  # the bundle's encoder, config and note
        self.limit_mb, self.turns = max_upload_mb, threading.BoundedSemaphore(concurrent)
        # Greedy and two beam widths, with the bundle's own beam width by default.
        self.default = self.captioner.bundle.config.beam_width
        self.widths = sorted({1, 3, 5, self.default})

    def page(self, result: str = "", status: int = 200, kind=None, beam=None):
        """The page; its menus keep the decoder and beam width last chosen."""
        encoder, note = self.captioner.bundle.encoder, self.captioner.note
        tuned = ", fine-tuned" if encoder["tuned_layers"] else ""
        body = PAGE.format(
            models=menu(
                "model",
                {k: KINDS[k].label for k in self.by_kind},
                kind or self.captioner.kind,
            ),
            widths=menu(
                "decoding",
                {k: "greedy" if k == 1 else f"beam search, k = {k}" for k in self.widths},
                beam or self.default,
            ),
            encoder=html.escape(
                f"{encoder['encoder']} {encoder['layer']} ({encoder['weights']} "
                f"weights{tuned})"
            ),
            note=f'<p class="note" id="note">{html.escape(note)}</p>' if note else "",
            limit=f"{self.limit_mb:g}",
            result=result,
        )
        return body, status, {"Content-Type": "text/html; charset=utf-8"}

    def error_page(self, message: str, status: int):
        return self.page(
            f'<p class="error" id="error">{html.escape(message)}</p>', status
        )

    def choices(self) -> tuple[str, int]:
        """The decoder kind and beam width the form asks for; ValueError if neither
        is one the page offers."""
        try:
            beam = int(request.form.get("decoding", self.default))
        except ValueError:
            beam = None
        if beam not in self.widths:
            raise ValueError(f"decoding must be one of {self.widths}")
        kind = request.form.get("model", self.captioner.kind)
        if kind not in self.by_kind:
            raise ValueError(f"model must be one of {list(self.by_kind)}")
        return kind, beam

    def caption_upload(self):
        """(result, picture, file name, kind, beam) of the uploaded file; ValueError
        for a bad request, Busy when no turn comes free."""
        upload = request.files.get("image")
        if upload is None:
            raise ValueError("no file was uploaded (the form field is 'image')")
        name = upload.filename or "the uploaded file"
        kind, beam = self.choices()
        if not self.turns.acquire(timeout=WAIT_SECONDS):
            raise Busy()
        try:
            try:
                picture = images.load_image(
                    io.BytesIO(upload.read()), self.captioner.image_size
                )
            except ValueError as problem:
                raise ValueError(
                    f"{name} is not an image we can read: {problem}"
                ) from None
            result = self.by_kind[kind].caption_pictures([picture], beam)[0]
        finally:
            self.turns.release()
        return result, picture, name, kind, beam

    def result_html(self, result: dict, picture, name: str, kind: str) -> str:
        """The caption and its attention figure (a merge decoder: the picture alone)."""
        image = Image.fromarray(picture)
        if result["attention"].any():
            figure = maps.attention_figure(image, result["words"], result["attention"])
            shown = 'id="attention" alt="attention for each word"'
        else:
            figure = maps.attention_figure(image, [], [], columns=1)
            shown = 'id="picture" alt="the picture"'
        png = base64.b64encode(viz.figure_png(figure, dpi=80)).decode()
        return (
            f"<p>{html.escape(name)}, {KINDS[kind].label} decoder:</p>"
            f'<p class="caption" id="caption">{html.escape(result["text"])}</p>'
            f'<img {shown} src="data:image/png;base64,{png}">'
        )

    def form(self):
        try:
            result, picture, name, kind, beam = self.caption_upload()
        except ValueError as problem:
            return self.error_page(str(problem), 400)
        except Busy:
            return self.error_page(BUSY, 503)
        return self.page(self.result_html(result, picture, name, kind), 200, kind, beam)

    def api(self):
        try:
            result, _, name, kind, _ = self.caption_upload()
        except ValueError as problem:
            return jsonify(error=str(problem)), 400
        except Busy:
            return jsonify(error=BUSY), 503
        words = {"words": result["words"], "attention": result["attention"].tolist()}
        return jsonify(
            image=name, model=kind, caption=result["text"], score=result["score"], **words
        )

    def too_large(self, _: RequestEntityTooLarge):
        """413, as a page or as JSON, saying which limit the upload passed (a chunked
        upload, of no declared length, passed the size limit if it read up to it)."""
        limit = int(self.limit_mb * 2**20)
        chunked_over = request.content_length is None and getattr(
            request.stream, "is_exhausted", False
        )
        if (request.content_length or 0) > limit or chunked_over:
            message = f"The upload is larger than the {self.limit_mb:g} MB upload limit."
        else:
            message = "The upload has more form parts or fields than a picture needs."
        if request.path.startswith("/api/"):
            return jsonify(error=message), 413
        return self.error_page(message, 413)

    def http_error(self, error: HTTPException):
        """Any other HTTP error (404, 405...): JSON under /api/, Flask's page elsewhere."""
        if request.path.startswith("/api/"):
            return jsonify(error=error.description), error.code
        return error


def create_app(
    captioners: list, max_upload_mb: float = 8.0, concurrent: int = CONCURRENT_CAPTIONS
) -> Flask:
    """The Flask app of a `CaptionPage`.

    Uploads are checked in layers: Flask refuses a body over the size limit (413),
    `images.load_image` refuses formats we do not list and pictures over its pixel
    limit (400), and at most `concurrent` uploads are decoded and captioned at once
    (503 after WAIT_SECONDS), so memory stays bounded whatever people send.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 2**20)
    captions = CaptionPage(captioners, max_upload_mb, concurrent)
    app.get("/")(lambda: captions.page())
    app.post("/", endpoint="form")(captions.form)
    app.post("/api/caption", endpoint="api")(captions.api)
    app.register_error_handler(413, captions.too_large)
    app.register_error_handler(HTTPException, captions.http_error)
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
        choices=list(KINDS),
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
    if not 0 < args.max_upload_mb <= MAX_UPLOAD_MB:  # also NaN
        print(
            f"error: --max-upload-mb {args.max_upload_mb}: give a size in MB above 0 "
            f"and at most {MAX_UPLOAD_MB}",
            file=sys.stderr,
        )
        return 2
    try:  # before the model loads: a taken port is said at once
        listening = listen(args.host, args.port)
    except (OSError, OverflowError) as error:
        reason = os.strerror(error.errno) if getattr(error, "errno", None) else error
        print(
            f"error: {args.host}:{args.port}: cannot listen ({reason})", file=sys.stderr
        )
        return 2
    matplotlib.use("Agg")  # figures are drawn on request threads: no GUI backend
    try:
        loaded = captioners(args.model, args.kind, args.weights)
    except (OSError, ValueError, RuntimeError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"Open http://{args.host}:{args.port}/ (Ctrl+C stops)", flush=True)
    # Never the debugger (it runs code); deadlines per connection.
    serve(create_app(loaded, args.max_upload_mb), listening).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
