import hashlib
import json

from helpers import data, sample


def digest(folder):
    hashes = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        hashes.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return hashes.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = sample.write_sample(tmp_path / "one", 24, seed=5)
    second = sample.write_sample(tmp_path / "two", 24, seed=5)
    third = sample.write_sample(tmp_path / "three", 24, seed=6)
    assert digest(first) == digest(second)
    assert digest(first) != digest(third)


def test_sample_loads_through_the_real_layout_a_path(tmp_path):
    dataset = data.load_dataset(sample.write_sample(tmp_path / "s", 80, seed=1))
    report = dataset.report()
    assert report["layout"] == "flickr8k-original"
    assert report["images"] == 80 and report["captions"] == 400
    assert report["splits"] == {"train": 59, "dev": 10, "test": 10}
    assert report["unsplit_images"] == 1
    assert len(report["missing_images"]) == 1 and report["missing_images"][0].endswith(
        ".jpg.1"
    )
    assert all(len(set(c)) == 5 for c in dataset.captions.values()), (
        "five distinct captions"
    )


def test_captions_describe_the_picture(tmp_path):
    dataset = data.load_dataset(sample.write_sample(tmp_path / "s", 60, seed=2))
    relations = [w for ws in sample.PHRASES.values() for w in ws]
    with_relation = 0
    for captions in dataset.captions.values():
        text = " ".join(captions).lower()
        assert any(colour in text for colour in sample.COLOURS)
        assert any(word in text for words in sample.SHAPES.values() for word in words)
        with_relation += any(r in text for r in relations)
    assert with_relation > 30  # most pictures hold two or three shapes


def test_regenerates_only_when_settings_change(tmp_path):
    folder = sample.write_sample(tmp_path / "s", 10, seed=3)
    stamp = (folder / "sample.json").stat().st_mtime_ns
    sample.write_sample(folder, 10, seed=3)
    assert (folder / "sample.json").stat().st_mtime_ns == stamp
    sample.write_sample(folder, 12, seed=3)
    assert len(list((folder / "Flicker8k_Dataset").iterdir())) == 12


def test_the_relation_check_agrees_with_every_generated_caption(tmp_path):
    """The generator's own captions state where the shapes are, always correctly: the
    check must judge every one of them right, and their mirror images wrong."""
    folder = sample.write_sample(tmp_path / "s", 60, seed=2)
    truth = json.loads((folder / sample.TRUTH).read_text())
    dataset = data.load_dataset(folder)
    judged = [
        (caption, sample.relation_is_wrong(caption, truth[name]))
        for name, captions in dataset.captions.items()
        for caption in captions
    ]
    stated = [caption for caption, wrong in judged if wrong is not None]
    assert len(stated) > 60 and not [c for c, wrong in judged if wrong], judged
    mirrored = {"left of": "right of", "right of": "left of", "above": "below"}
    for caption in stated:
        for phrase, opposite in mirrored.items():
            if f" {phrase} " in caption.lower() and "next to" not in caption.lower():
                flipped = caption.lower().replace(f" {phrase} ", f" {opposite} ", 1)
                name = next(n for n, cs in dataset.captions.items() if caption in cs)
                assert sample.relation_is_wrong(flipped, truth[name]), flipped
                break


def test_a_stated_relation_is_read_from_either_side():
    truth = {
        "things": [{"kind": "triangle"}, {"kind": "star"}],
        "relation": "right of",  # the triangle is to the right of the star
    }
    assert sample.relation_is_wrong("a black triangle to the left of a star", truth)
    assert not sample.relation_is_wrong("a purple star to the left of a triangle", truth)
    assert not sample.relation_is_wrong("a triangle beside a star", truth)
    assert sample.relation_is_wrong("a star with a triangle below it", truth)
    assert sample.relation_is_wrong("two shapes: a triangle and a star", truth) is None
