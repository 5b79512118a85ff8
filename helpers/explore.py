"""The notebooks' explorer: pick a picture (or upload one) and a decoding, then step
through the caption word by word with the attention map over the picture.

It displays as ipywidgets in a live Jupyter. The same output also carries a static
PNG of the whole caption with its attention maps, which is what papermill, nbval and
the HTML copies keep: frontends that render widgets prefer the widget, the others
fall back to the picture.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import ipywidgets as widgets
from IPython.display import clear_output, display
from PIL import Image

from helpers import images, maps, viz

DECODINGS = (("greedy", 1), ("beam 3", 3), ("beam 5", 5))


class Explorer:
    """Widgets around a `helpers.caption.Captioner` and a few named pictures."""

    def __init__(self, captioner, pictures: dict[str, Path], beam_width: int = 3):
        self.captioner, self.pictures = captioner, dict(pictures)
        self.picture = widgets.Dropdown(
            options=list(self.pictures), description="picture"
        )
        self.upload = widgets.FileUpload(accept="image/*", description="or upload")
        self.decoding = widgets.ToggleButtons(
            options=DECODINGS, value=beam_width, description="decoding"
        )
        self.word = widgets.IntSlider(min=0, max=0, description="word")
        play = widgets.Play(interval=900, description="play")
        widgets.jslink((play, "value"), (self.word, "value"))
        self.play = play
        self.message = widgets.HTML()
        self.output = widgets.Output()
        self.picture.observe(self._picked, names="value")
        self.upload.observe(self._uploaded, names="value")
        self.decoding.observe(self._caption, names="value")
        self.word.observe(self._draw, names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.picture, self.upload]),
                self.decoding,
                widgets.HBox([play, self.word]),
                self.message,
                self.output,
            ]
        )
        self.source: str | Path = ""
        self.image = None
        self._picked()

    def _picked(self, *_) -> None:
        """A picture from the list."""
        name = self.picture.value
        self.source, self.image = name, self.captioner.load(self.pictures[name])
        self._caption()

    def _uploaded(self, *_) -> None:
        """An uploaded file, decoded with the same checks as the caption command."""
        files = uploaded_files(self.upload.value)
        if not files:
            return
        name, content = files[0]
        try:
            image = images.load_image(io.BytesIO(content), self.captioner.image_size)
        except ValueError as problem:
            self.message.value = (
                f"<b>{html.escape(name)}</b> is not a readable image "
                f"({html.escape(str(problem))})"
            )
            return
        self.source, self.image = name, image
        self._caption()

    def _caption(self, *_) -> None:
        """Decode the current picture with the chosen beam width."""
        self.result = self.captioner.caption_pictures([self.image], self.decoding.value)[
            0
        ]
        words = self.result["words"]
        self.message.value = (  # a file's name is the user's: escaped, never markup
            f"<b>{html.escape(str(self.source))}</b>: {html.escape(self.result['text'])}"
        )
        self.word.max = self.play.max = max(len(words) - 1, 0)
        self.word.value = 0
        self._draw()

    def _draw(self, *_) -> None:
        with self.output:
            clear_output(wait=True)
            if self.result["words"]:
                display(self.step_figure(self.word.value))

    def step_figure(self, position: int):
        """The words up to `position` and where the model looked for the last one."""
        result = self.result
        return maps.attention_step(
            _as_image(self.image), result["words"], result["attention"], position
        )

    def static_figure(self):
        """The whole caption, one attention panel per word."""
        result = self.result
        return maps.attention_figure(
            _as_image(self.image), result["words"], result["attention"]
        )

    def _repr_mimebundle_(self, **kwargs):
        bundle = widget_bundle(self.widget, **kwargs)
        bundle["text/plain"] = f"Explorer ({self.source}: {self.result['text']})"
        bundle["image/png"] = viz.figure_png(self.static_figure())
        return bundle


def widget_bundle(widget, **kwargs) -> dict:
    """A widget's display data: ipywidgets 8 gives it (`_repr_mimebundle_`);
    ipywidgets 7 (Colab, Kaggle) only displays itself, with this view reference."""
    if hasattr(widget, "_repr_mimebundle_"):
        return widget._repr_mimebundle_(**kwargs)
    return {
        "application/vnd.jupyter.widget-view+json": {
            "version_major": 2,
            "version_minor": 0,
            "model_id": widget.model_id,
        }
    }


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """(name, content) of each file in a FileUpload's value, in either shape:
    ipywidgets 8 holds a tuple of {"name", "content" (a memoryview), ...}, ipywidgets 7
    (Colab, Kaggle) a dict of name -> {"content": bytes, "metadata": {...}}."""
    if isinstance(value, dict):
        return [(str(name), bytes(file["content"])) for name, file in value.items()]
    return [(str(file["name"]), bytes(file["content"])) for file in value]


def _as_image(array):
    return Image.fromarray(array)
