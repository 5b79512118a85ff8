"""Attention maps say how focused they are: the largest weight against the even
spread, and the perplexity of a word's attention."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from PIL import Image

from helpers import maps


def test_perplexity_is_the_number_of_cells_an_even_spread_covers():
    cells = 49
    even, single = np.full(cells, 1 / cells), np.eye(cells)[3]
    half = np.r_[np.full(7, 1 / 7), np.zeros(cells - 7)]
    np.testing.assert_allclose(maps.perplexity(even), cells)
    np.testing.assert_allclose(maps.perplexity(single), 1, atol=1e-6)
    np.testing.assert_allclose(maps.perplexity(np.stack([even, half])), [cells, 7])
    assert 1 < maps.perplexity([0.7, 0.1, 0.1, 0.1]) < 4


def test_every_panel_states_its_largest_weight_against_the_even_spread(tmp_path):
    picture = tmp_path / "p.png"
    Image.new("RGB", (120, 90), (30, 120, 200)).save(picture)
    cells = 49
    nearly_even = np.full(cells, 1 / cells)
    nearly_even[:2] += [0.02, -0.02]
    attention = np.stack([nearly_even, np.eye(cells)[10]])
    figure = maps.attention_figure(picture, ["a", "dog"], attention)
    FigureCanvasAgg(figure).draw()
    labels = [t.get_text() for t in figure.findobj(Text) if "even" in t.get_text()]
    assert labels == ["max 0.04 = 2.0x even", "max 1 = 49.0x even"]
    step = maps.attention_step(picture, ["a", "dog"], attention, 0)
    labels = [t.get_text() for t in step.findobj(Text) if "even" in t.get_text()]
    assert labels == ["max 0.04 = 2.0x even"]


def test_the_spread_summary_says_how_many_cells_a_word_looks_at():
    cells = 49
    even = np.full((3, cells), 1 / cells)
    focused = np.eye(cells)[[1, 2, 3]] * 0.97 + 0.03 / cells
    spread = maps.spread_summary([even, even[:2]])
    assert (
        spread.startswith("Over 5 words of 2 captions") and "perplexity of 49.0" in spread
    )
    assert "49 of the 49 cells (100% of the grid" in spread and "1.0 times" in spread
    assert "close to the mean of the grid" in spread
    sharp = maps.spread_summary([focused])
    assert "picks out places" in sharp and "mean of the grid" not in sharp
    region = np.r_[np.full(10, 0.1), np.zeros(cells - 10)]
    assert "a region rather than a place" in maps.spread_summary([region[None]])
