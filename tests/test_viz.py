"""Figures that a notebook column shows as drawn: nothing overlaps, nothing is cut."""

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from PIL import Image

from helpers import viz


def test_caption_grid_keeps_captions_off_every_picture(tmp_path):
    # a portrait photo above a picture with the most caption lines: Flickr8k's layout
    sizes = [(375, 500), (500, 375), (500, 400), (500, 410), (500, 461), (500, 333)]
    paths = []
    for number, size in enumerate(sizes):
        paths.append(tmp_path / f"{number}.png")
        Image.new("RGB", size, (200, 40 * number, 90)).save(paths[-1])
    captions = [
        [
            f"{i}: a man in an orange hat" + " lies on a bench" * 2 * (n == 3)
            for i in range(5)
        ]
        for n in range(len(sizes))
    ]
    figure = viz.caption_grid(paths, captions)
    FigureCanvasAgg(figure)
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    texts = [t for t in figure.findobj(Text) if "orange hat" in t.get_text()]
    pictures = [axis for axis in figure.axes if axis.images]
    assert len(texts) == len(pictures) == len(sizes)  # no blank panel
    whole = Bbox.from_bounds(0, 0, *figure.bbox.size)
    for text in texts:
        box = text.get_window_extent(renderer)
        assert whole.containsx(box.x0) and whole.containsy(box.y1), text.get_text()
        assert text.get_fontsize() >= 10
        for axis in pictures:
            shown = axis.get_window_extent(renderer)
            assert not box.overlaps(shown), (text.get_text(), axis.images[0].get_size())


def test_the_beam_trace_shows_its_picture_large_and_its_text_beneath(tmp_path):
    Image.new("RGB", (500, 375), (90, 140, 60)).save(tmp_path / "photo.jpg")
    step = [{"score": -1.5 * k, "words": ["a", "dog"], "finished": False} for k in (1, 2)]
    steps = [step] * 12
    figure = viz.beam_figure(tmp_path / "photo.jpg", steps)
    FigureCanvasAgg(figure)
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    (picture,) = [axis for axis in figure.axes if axis.images]
    shown = picture.images[0].get_window_extent(renderer)
    assert shown.height >= 4 * figure.dpi  # inches on the page, as a column shows it
    (text,) = [t for t in figure.findobj(Text) if "step  1" in t.get_text()]
    box = text.get_window_extent(renderer)
    assert box.y1 <= shown.y0 + 1 and box.y0 >= 0 and box.height > 0


def test_one_picture_in_a_caption_grid_is_as_large_as_one_of_three(tmp_path):
    Image.new("RGB", (500, 375), (200, 40, 90)).save(tmp_path / "one.png")
    sizes = []
    for count in (1, 3):
        figure = viz.caption_grid([tmp_path / "one.png"] * count, [["a dog"]] * count)
        FigureCanvasAgg(figure)
        renderer = figure.canvas.get_renderer()
        figure.draw(renderer)
        shown = [a.images[0].get_window_extent(renderer) for a in figure.axes if a.images]
        sizes.append(shown[0].width)
    assert abs(sizes[0] - sizes[1]) < 0.05 * sizes[1]  # the margins differ a little
