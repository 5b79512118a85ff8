import json
import os
import subprocess
import sys

import pytest

from helpers import data
from helpers.paths import ROOT
from helpers.text import normalize_caption


def touch_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"\xff\xd8\xff")


def write_layout_a(root, token_text: bytes, names, splits=None):
    touch_images(root / "Flicker8k_Dataset", names)
    text = root / "Flickr8k_text"
    text.mkdir(parents=True)
    (text / "Flickr8k.token.txt").write_bytes(token_text)
    (text / "Flickr8k.lemma.token.txt").write_text("ignored")
    for split, file in data.SPLIT_FILES.items():
        if splits is not None:
            (text / file).write_text("\n".join(splits[split]) + "\n")
    return root


def five(name, sep="\t", prefix="A dog"):
    return "".join(f"{name}#{k}{sep}{prefix} number {k} .\n" for k in range(5))


def test_layout_a_with_every_quirk(tmp_path):
    names = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "nocaption.jpg"]
    token = (
        "\ufeff"
        + five("a.jpg")
        + five("b.jpg", sep=" ")  # a space instead of the TAB after #k
        + "\n\n"  # blank lines
        + five("c.jpg").replace("\n", "\r\n")  # CRLF
        + five("d.jpg")
        + five("e.jpg")
        + five("a.jpg.1")  # the bogus key: captions, no image
    )
    splits = {
        "train": ["a.jpg", "b.jpg"],
        "dev": ["c.jpg"],
        "test": ["d.jpg", "ghost.jpg"],
    }
    dataset = data.load_dataset(write_layout_a(tmp_path, token.encode(), names, splits))
    report = dataset.report()
    assert report["layout"] == "flickr8k-original"
    assert report["images"] == 5 and report["captions"] == 25
    assert report["splits"] == {"train": 2, "dev": 1, "test": 1}
    assert report["missing_images"] == ["a.jpg.1"]
    assert report["images_without_captions"] == ["nocaption.jpg"]
    assert report["unsplit_images"] == 1 and dataset.unsplit_images == ["e.jpg"]
    assert dataset.captions["b.jpg"][0] == "A dog number 0 ."
    assert dataset.captions["c.jpg"][4] == "A dog number 4 ."
    assert any("ghost.jpg" in note for note in report["notes"])
    assert report["split_source"].startswith("official lists")


def test_renamed_bogus_key_is_reported_not_double_counted(tmp_path):
    token = five("a.jpg") + "".join(
        line + "\n" for line in five("a.jpg", prefix="A copy").splitlines()[:4]
    )
    dataset = data.load_dataset(write_layout_a(tmp_path, token.encode(), ["a.jpg"]))
    assert len(dataset.captions["a.jpg"]) == 5
    assert all("copy" not in caption for caption in dataset.captions["a.jpg"])
    assert any("4 duplicate caption keys" in note for note in dataset.notes)


def test_malformed_line_names_file_and_line(tmp_path):
    token = five("a.jpg") + "a.jpg without an index\n"
    root = write_layout_a(tmp_path, token.encode(), ["a.jpg"])
    with pytest.raises(ValueError, match=r"Flickr8k\.token\.txt:6: expected"):
        data.load_dataset(root)


def test_invalid_utf8_names_the_line(tmp_path):
    token = five("a.jpg").encode() + b"a.jpg#5\tbad \xff byte\n"
    root = write_layout_a(tmp_path, token, ["a.jpg"])
    with pytest.raises(ValueError, match=r"token\.txt:6: not valid UTF-8"):
        data.load_dataset(root)


def test_overlapping_splits_are_refused(tmp_path):
    splits = {"train": ["a.jpg"], "dev": ["a.jpg"], "test": []}
    root = write_layout_a(tmp_path, five("a.jpg").encode(), ["a.jpg"], splits)
    with pytest.raises(ValueError, match="in both train and dev"):
        data.load_dataset(root)


def test_kaggle_layout_uses_a_real_csv_parser(tmp_path):
    names = [f"{i}.jpg" for i in range(16)]
    touch_images(tmp_path / "Images", names)
    rows = ["image,caption"]
    for name in names:
        rows += [f'{name},"A dog, wet, runs ."'] + [
            f"{name},A cat sits {k} ." for k in range(4)
        ]
    (tmp_path / "captions.txt").write_text("\r\n".join(rows) + "\r\n")
    dataset = data.load_dataset(tmp_path, seed=7)
    assert dataset.layout == "flickr8k-kaggle"
    assert dataset.captions["3.jpg"][0] == "A dog, wet, runs ."
    assert dataset.report()["captions"] == 80
    assert {k: len(v) for k, v in dataset.splits.items()} == {
        "train": 12,
        "dev": 2,
        "test": 2,
    }
    assert dataset.split_source == "seeded split by image (seed 7)"
    # The split is by image, deterministic, and changes with the seed.
    assert data.load_dataset(tmp_path, seed=7).splits == dataset.splits
    assert data.load_dataset(tmp_path, seed=8).splits != dataset.splits


def test_kaggle_bad_row_names_the_line(tmp_path):
    touch_images(tmp_path / "Images", ["a.jpg"])
    (tmp_path / "captions.txt").write_text("image,caption\na.jpg,fine\na.jpg\n")
    with pytest.raises(ValueError, match=r"captions\.txt:3"):
        data.load_dataset(tmp_path)


def kaggle(tmp_path, text: str):
    touch_images(tmp_path / "Images", ["a.jpg", "b.jpg", "c.jpg"])
    (tmp_path / "captions.txt").write_text(text)
    return tmp_path


def test_kaggle_unclosed_quote_is_an_error_at_its_line(tmp_path):
    root = kaggle(
        tmp_path, 'image,caption\na.jpg,fine\nb.jpg,"runs on\nc.jpg,lost\nc.jpg,x\n'
    )
    with pytest.raises(ValueError, match=r"captions\.txt:3: .*quote"):
        data.load_dataset(root)


def test_kaggle_line_numbers_count_blank_lines(tmp_path):
    root = kaggle(tmp_path, "image,caption\n\n\na.jpg,fine\n\nb.jpg\n")
    with pytest.raises(ValueError, match=r"captions\.txt:6: expected"):
        data.load_dataset(root)


def test_kaggle_repeated_rows_stay_separate_references_and_are_reported(tmp_path):
    """Two annotators' identical sentences: published scoring counts both."""
    rows = "image,caption\na.jpg,A dog .\nb.jpg,A cat .\na.jpg,A dog .\n"
    dataset = data.load_dataset(kaggle(tmp_path, rows))
    assert dataset.captions["a.jpg"] == ["A dog .", "A dog ."]
    assert dataset.report()["captions"] == 3
    assert any("1 repeated row" in note and "2, 4" in note for note in dataset.notes)


@pytest.mark.parametrize(
    "text", ["", "image,caption\n", "\n\n"], ids=["empty", "header", "blank"]
)
def test_a_caption_file_without_captions_is_an_error(tmp_path, text):
    with pytest.raises(ValueError, match=r"captions\.txt.*(no captions|header)"):
        data.load_dataset(kaggle(tmp_path, text))


def test_a_byte_order_mark_inside_a_file_names_its_line(tmp_path):
    token = five("a.jpg") + "\ufeff" + five("b.jpg")  # two files joined with cat
    root = write_layout_a(tmp_path, token.encode(), ["a.jpg", "b.jpg"])
    with pytest.raises(ValueError, match=r"Flickr8k\.token\.txt:6: a byte-order mark"):
        data.load_dataset(root)


@pytest.mark.parametrize(
    "content, where",
    [
        ({"images": [{"filename": "a.jpg", "sentences": []}]}, r"images\[0\].*'split'"),
        ({"pictures": []}, r"needs 'images'"),
        (
            {"images": [{"filename": "a.jpg", "split": "test", "sentences": [{}]}]},
            r"images\[0\]\.sentences\[0\].*'raw'",
        ),
        ([1, 2], r"expected a JSON object"),
    ],
)
def test_karpathy_file_with_missing_keys_names_the_entry(tmp_path, content, where):
    touch_images(tmp_path / "Images", ["a.jpg"])
    (tmp_path / "dataset_flickr8k.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"dataset_flickr8k\.json: " + where):
        data.load_dataset(tmp_path)


def test_coco_file_with_missing_keys_names_the_entry(tmp_path):
    touch_images(tmp_path / "train2014", ["x.jpg"])
    (tmp_path / "annotations").mkdir()
    content = {"images": [{"id": 1, "file_name": "x.jpg"}], "annotations": [{"id": 3}]}
    (tmp_path / "annotations" / "captions_train2014.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"annotations\[0\]: needs 'image_id'"):
        data.load_dataset(tmp_path)


def test_karpathy_json_gives_the_splits_when_no_lists(tmp_path):
    names = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    touch_images(tmp_path / "Images", names)
    (tmp_path / "captions.txt").write_text(
        "image,caption\n" + "".join(f"{n},A thing .\n" for n in names)
    )
    karpathy = {
        "images": [
            {"filename": n, "split": s, "sentences": [{"raw": "x", "tokens": ["x"]}]}
            for n, s in zip(names, ["train", "restval", "val", "test"])
        ]
    }
    (tmp_path / "dataset_flickr8k.json").write_text(json.dumps(karpathy))
    dataset = data.load_dataset(tmp_path)
    assert dataset.splits == {
        "train": ["a.jpg", "b.jpg"],
        "dev": ["c.jpg"],
        "test": ["d.jpg"],
    }
    assert dataset.split_source == "Karpathy dataset_flickr8k.json"


def test_flickr30k_token_and_kaggle_csv(tmp_path):
    token_root, csv_root = tmp_path / "token", tmp_path / "csv"
    touch_images(token_root / "flickr30k-images", ["1.jpg"])
    (token_root / "results_20130124.token").write_text(five("1.jpg"))
    assert data.load_dataset(token_root).report()["captions"] == 5
    touch_images(csv_root / "flickr30k_images", ["1.jpg", "2.jpg"])
    (csv_root / "results.csv").write_text(
        "image_name| comment_number| comment\n"
        "1.jpg| 0| A man , smiling .\n"
        "2.jpg| 0| A dog .\n"
        "2.jpg| 4 A dog runs across the grass .\n"  # the known broken row
    )
    dataset = data.load_dataset(csv_root)
    assert dataset.layout == "flickr30k-kaggle"
    assert dataset.captions["1.jpg"] == ["A man , smiling ."]
    assert dataset.captions["2.jpg"][1] == "A dog runs across the grass ."
    assert any("lines [4]" in note for note in dataset.notes)


def test_coco_captions(tmp_path):
    touch_images(tmp_path / "train2014", ["COCO_train2014_1.jpg"])
    touch_images(tmp_path / "val2014", ["COCO_val2014_2.jpg"])
    (tmp_path / "annotations").mkdir()
    for split, image_id in (("train", 1), ("val", 2)):
        content = {
            "images": [{"id": image_id, "file_name": f"COCO_{split}2014_{image_id}.jpg"}],
            "annotations": [
                {"id": 10 + k, "image_id": image_id, "caption": f"A bus {k}. "}
                for k in range(5)
            ],
        }
        (tmp_path / "annotations" / f"captions_{split}2014.json").write_text(
            json.dumps(content)
        )
    dataset = data.load_dataset(tmp_path)
    assert dataset.layout == "coco2014"
    assert dataset.captions["COCO_val2014_2.jpg"][0] == "A bus 0."
    assert dataset.report()["images"] == 2


def test_unrecognised_folder(tmp_path):
    with pytest.raises(ValueError, match="no known caption file"):
        data.load_dataset(tmp_path)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "helpers.data", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_inspect_cli_json_and_exit_codes(tmp_path):
    splits = {"train": ["a.jpg"], "dev": ["b.jpg"], "test": ["c.jpg"]}
    root = write_layout_a(
        tmp_path / "f8k",
        (five("a.jpg") + five("b.jpg") + five("c.jpg") + five("c.jpg.1")).encode(),
        ["a.jpg", "b.jpg", "c.jpg"],
        splits,
    )
    result = run_cli("inspect", root, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == 3 and report["captions"] == 15
    assert report["splits"] == {"train": 1, "dev": 1, "test": 1}
    assert report["missing_images"] == ["c.jpg.1"]
    assert report["vocabulary"] == len({"a", "dog", "number"})
    readable = run_cli("inspect", root)
    assert "3 images with 15 captions" in readable.stdout
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "empty", tmp_path / "does-not-exist", root / "Flickr8k_text"):
        result = run_cli("inspect", bad)
        assert result.returncode == 2
        assert result.stderr.startswith("error: ") and bad.name in result.stderr


@pytest.mark.parametrize(
    "raw, options, expected",
    [
        ("A dog's ball , 2 of them .", {}, "a dogs ball of them"),
        ("  Two   DOGS!  ", {}, "two dogs"),
        ("A 3-year-old boy .", {"keep_digits": True}, "a 3yearold boy"),
        ("A man in a red T shirt .", {"min_word_length": 2}, "man in red shirt"),
        ("A dog 's ball", {"min_word_length": 2, "alphabetic_only": True}, "dog ball"),
    ],
)
def test_normalize_caption(raw, options, expected):
    assert normalize_caption(raw, **options) == expected


def test_karpathy_file_alone_gives_captions_and_splits(tmp_path):
    touch_images(tmp_path / "flickr30k-images", ["1.jpg", "2.jpg"])
    karpathy = {
        "images": [
            {
                "filename": "1.jpg",
                "split": "train",
                "sentences": [{"raw": "A red bus .", "tokens": ["a", "red", "bus"]}],
            },
            {
                "filename": "2.jpg",
                "split": "test",
                "sentences": [{"raw": "Two cats .", "tokens": ["two", "cats"]}],
            },
        ]
    }
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(karpathy))
    dataset = data.load_dataset(tmp_path)
    assert dataset.layout == "flickr30k-karpathy"
    assert dataset.captions == {"1.jpg": ["A red bus ."], "2.jpg": ["Two cats ."]}
    assert dataset.splits == {"train": ["1.jpg"], "test": ["2.jpg"], "dev": []}
    assert any("the dev split is empty" in note for note in dataset.notes)


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_caption_file_that_is_not_a_file_is_refused_without_reading_it(tmp_path, kind):
    root = write_layout_a(tmp_path / "d", five("a.jpg").encode(), ["a.jpg"])
    token = root / "Flickr8k_text" / "Flickr8k.token.txt"
    token.unlink()
    if kind == "fifo":
        os.mkfifo(token)  # reading it would wait forever for a writer
    else:
        token.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(ValueError, match=r"Flickr8k.token.txt: is not a regular file"):
        data.load_dataset(root)
