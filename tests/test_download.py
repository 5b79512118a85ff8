"""Download and extraction against a loopback HTTP server serving zips the test builds."""

import errno
import hashlib
import http.server
import io
import json
import threading
import zipfile

import pytest

from helpers import data, download, files
from helpers.config import get_config


def build_zips():
    images, text = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(images, "w") as bundle:
        for i in range(3):
            bundle.writestr(
                f"Flicker8k_Dataset/{i}.jpg", bytes(range(256)) * 400 * (i + 1)
            )
        bundle.writestr("__MACOSX/._junk", b"junk")
    with zipfile.ZipFile(text, "w") as bundle:
        bundle.writestr(
            "Flickr8k.token.txt",
            "".join(f"{i}.jpg#{k}\tA thing {k} .\n" for i in range(3) for k in range(5)),
        )
        for split, file in data.SPLIT_FILES.items():
            bundle.writestr(
                file, {"train": "0.jpg\n", "dev": "1.jpg\n", "test": "2.jpg\n"}[split]
            )
    return {
        "Flickr8k_Dataset.zip": images.getvalue(),
        "Flickr8k_text.zip": text.getvalue(),
    }


class Server:
    """Serves `files` with Range support; can cut the first response of a file short."""

    def __init__(self, files):
        self.files, self.drop_after, self.requests = dict(files), {}, []
        self.unavailable = 0  # answer this many requests with HTTP 503 first
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                body = server.files.get(name)
                server.requests.append((name, self.headers.get("Range")))
                if server.unavailable:
                    server.unavailable -= 1
                    self.send_error(503)
                    return
                if body is None:
                    self.send_error(404)
                    return
                start = int(self.headers.get("Range", "bytes=0-")[6:].split("-")[0] or 0)
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = server.drop_after.pop(name, None)
                self.wfile.write(body[start:cut] if cut else body[start:])
                if cut:
                    self.wfile.flush()
                    self.connection.close()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(download, "RETRY_BACKOFF_SECONDS", 0)


@pytest.fixture
def served():
    zips = build_zips()
    server = Server(zips)
    yield server, zips
    server.close()


def checksums(zips, dataset="flickr8k"):
    """The dataset's archives with the sha256 of the test zips (None stays None)."""
    return {
        name: remote._replace(
            checksum=remote.checksum
            and "sha256:" + hashlib.sha256(zips[name]).hexdigest()
        )
        for name, remote in download.DATASETS[dataset].items()
    }


def test_download_resumes_after_a_dropped_connection(served, tmp_path):
    server, zips = served
    server.drop_after["Flickr8k_Dataset.zip"] = 1000
    folder = download.download_dataset("flickr8k", tmp_path, server.url, checksums(zips))
    ranges = [r for name, r in server.requests if name == "Flickr8k_Dataset.zip"]
    assert ranges == ["bytes=0-", "bytes=1000-"]
    assert (folder / "Flickr8k_Dataset.zip").read_bytes() == zips["Flickr8k_Dataset.zip"]
    dataset = data.load_dataset(folder)
    assert dataset.report()["images"] == 3
    assert not (folder / "Flicker8k_Dataset" / "__MACOSX").exists()
    # A second run finds everything complete and asks the server for nothing.
    count = len(server.requests)
    download.download_dataset("flickr8k", tmp_path, server.url, checksums(zips))
    assert len(server.requests) == count


def test_interrupted_download_leaves_a_part_file_that_a_rerun_continues(served, tmp_path):
    server, zips = served
    name = "Flickr8k_Dataset.zip"
    destination = tmp_path / name
    server.drop_after[name] = 500
    expected = checksums(zips)[name].checksum
    with pytest.raises(RuntimeError, match="run the same command again to resume"):
        download.download_file(server.url + name, destination, expected, retries=0)
    assert (tmp_path / (name + ".part")).stat().st_size == 500
    assert not destination.exists()
    download.download_file(server.url + name, destination, expected, retries=0)
    assert destination.read_bytes() == zips[name]


def test_corrupt_download_is_deleted_and_nothing_is_extracted(served, tmp_path):
    server, zips = served
    good = checksums(zips)
    server.files["Flickr8k_text.zip"] = zips["Flickr8k_text.zip"][:-10] + b"x" * 10
    with pytest.raises(ValueError, match="sha256 is .* expected"):
        download.download_dataset("flickr8k", tmp_path, server.url, good)
    folder = tmp_path / "flickr8k"
    assert not (folder / "Flickr8k_text").exists()
    assert not (folder / "Flickr8k_text.zip").exists()
    assert not list(folder.glob("*.part")) and not list(folder.glob(".*partial"))


def test_broken_archive_never_looks_extracted(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a valid zip"):
        download.extract_zip(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.zip"]


def test_cli_download_over_loopback_and_http_errors(served, tmp_path, capsys):
    server, zips = served
    # The real checksums do not match these test zips: a clear error and exit 2.
    assert (
        data.main(
            ["download", "flickr8k", "--to", str(tmp_path), "--base-url", server.url]
        )
        == 2
    )
    assert "md5 is" in capsys.readouterr().err
    assert (
        data.main(
            [
                "download",
                "flickr8k",
                "--to",
                str(tmp_path),
                "--base-url",
                server.url + "missing/nothing-",
            ]
        )
        == 2
    )
    assert "HTTP 404" in capsys.readouterr().err


def test_server_errors_are_retried_and_client_errors_are_not(served, tmp_path):
    server, zips = served
    name = "Flickr8k_text.zip"
    expected = checksums(zips)[name].checksum
    server.unavailable = 2
    download.download_file(server.url + name, tmp_path / name, expected, retries=2)
    assert (tmp_path / name).read_bytes() == zips[name]
    server.unavailable = 3
    with pytest.raises(RuntimeError, match="HTTP 503"):
        download.download_file(server.url + name, tmp_path / "b.zip", expected, retries=2)
    count = len(server.requests)
    with pytest.raises(RuntimeError, match="HTTP 404"):
        download.download_file(server.url + "nothing", tmp_path / "c.zip", expected)
    assert len(server.requests) == count + 1


def test_an_archive_already_on_disk_is_verified_and_kept(served, tmp_path):
    server, zips = served
    name = "Flickr8k_text.zip"
    archive = tmp_path / name
    archive.write_bytes(b"someone else's file")
    with pytest.raises(ValueError, match="already on disk but its sha256"):
        download.download_file(server.url + name, archive, checksums(zips)[name].checksum)
    assert archive.read_bytes() == b"someone else's file" and not server.requests


def test_an_empty_zip_says_so(tmp_path):
    archive = tmp_path / "empty.zip"
    zipfile.ZipFile(archive, "w").close()
    with pytest.raises(ValueError, match="the zip file is empty"):
        download.extract_zip(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.zip"]


def test_a_full_disk_says_so_and_leaves_no_half_folder(served, tmp_path, monkeypatch):
    _, zips = served
    archive = tmp_path / "images.zip"
    archive.write_bytes(zips["Flickr8k_Dataset.zip"])

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "extractall", no_space)
    with pytest.raises(OSError, match="the disk is full"):
        download.extract_zip(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.zip"]


def zip_of(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, body in members.items():
            bundle.writestr(name, body)
    return buffer.getvalue()


def build_coco_zips():
    """COCO 2014's four archives in miniature: 2 train images, 2 val images."""
    images = {"train2014": [1, 2], "val2014": [3, 4]}
    names = {
        i: f"COCO_{split}_{i:012d}.jpg" for split, ids in images.items() for i in ids
    }
    annotations = {
        f"annotations/captions_{split}.json": json.dumps(
            {
                "images": [{"id": i, "file_name": names[i]} for i in ids],
                "annotations": [
                    {"id": 10 * i + k, "image_id": i, "caption": f"A thing {i} {k}."}
                    for i in ids
                    for k in range(5)
                ],
            }
        )
        for split, ids in images.items()
    }
    annotations["annotations/instances_train2014.json"] = "{}"  # also in the real zip
    karpathy = {
        "images": [
            {"filename": names[i], "split": split, "sentences": [{"raw": "A thing."}]}
            for i, split in [(1, "train"), (2, "restval"), (3, "val"), (4, "test")]
        ]
    }
    flickr = {"images": [{"filename": "x.jpg", "split": "test", "sentences": []}]}
    return {
        "annotations_trainval2014.zip": zip_of(annotations),
        "caption_datasets.zip": zip_of(
            {
                "dataset_coco.json": json.dumps(karpathy),
                "dataset_flickr8k.json": json.dumps(flickr),
                "dataset_flickr30k.json": json.dumps(flickr),
            }
        ),
        **{
            f"{split}.zip": zip_of({f"{split}/{names[i]}": b"jpeg" * 100 for i in ids})
            for split, ids in images.items()
        },
    }


def test_coco_downloads_resumably_and_loads_with_the_karpathy_split(tmp_path, capsys):
    zips = build_coco_zips()
    server = Server(zips)
    try:
        server.drop_after["train2014.zip"] = 100
        files = checksums(zips, "coco")
        folder = download.download_dataset("coco", tmp_path, server.url, files)
    finally:
        server.close()
    ranges = [r for name, r in server.requests if name == "train2014.zip"]
    assert ranges == ["bytes=0-", "bytes=100-"]
    # No checksum is published for Karpathy's zip: its sha256 is shown, not invented.
    karpathy_sha = hashlib.sha256(zips["caption_datasets.zip"]).hexdigest()
    assert (
        f"caption_datasets.zip: no published checksum; its sha256 is {karpathy_sha}"
        in (capsys.readouterr().out)
    )
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [
        "annotations",
        "karpathy",
        "train2014",
        "val2014",
    ]
    dataset = data.load_dataset(folder)
    assert dataset.layout == "coco2014" and len(dataset.captions) == 4
    assert dataset.captions["COCO_val2014_000000000003.jpg"][0] == "A thing 3 0."
    # dataset_coco.json, not the flickr files beside it; restval goes to training.
    assert dataset.split_source == "Karpathy dataset_coco.json"
    assert dataset.splits == {
        "train": ["COCO_train2014_000000000001.jpg", "COCO_train2014_000000000002.jpg"],
        "dev": ["COCO_val2014_000000000003.jpg"],
        "test": ["COCO_val2014_000000000004.jpg"],
    }
    # The coco profile reads that folder through the same notebooks' entry point.
    cfg = get_config("coco", data_dir=str(folder))
    assert data.load_profile_dataset(cfg).splits == dataset.splits


def test_real_profiles_name_where_their_data_comes_from(tmp_path):
    for profile, hint in [
        ("coco", "python -m helpers.data download coco --to"),
        ("flickr8k", "python -m helpers.data download flickr8k --to"),
        ("flickr30k", "it has no open download: docs/datasets.md says where"),
    ]:
        cfg = get_config(profile, data_dir=str(tmp_path / profile))
        with pytest.raises(FileNotFoundError, match=hint):
            data.load_profile_dataset(cfg)


def test_a_file_without_a_published_checksum_is_kept_not_replaced(
    served, tmp_path, capsys
):
    server, _ = served
    mine = tmp_path / "caption_datasets.zip"
    mine.write_bytes(b"my own file of that name")
    download.download_file(server.url + "Flickr8k_text.zip", mine, None)
    assert mine.read_bytes() == b"my own file of that name" and not server.requests
    assert "already there, kept" in capsys.readouterr().out


def test_an_extracted_folder_is_marked_as_ours(served, tmp_path):
    server, zips = served
    folder = download.download_dataset("flickr8k", tmp_path, server.url, checksums(zips))
    assert (folder / "Flickr8k_text" / files.OWNED).exists()
