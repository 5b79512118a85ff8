"""Write the ci profile's generated sample in the Kaggle copy's layout (for test-hosted).

    python tests/hosted/kaggle_layout.py OUT

OUT/Images/ holds the pictures and OUT/captions.txt the CSV `image,caption`, with no
split lists: what a Kaggle notebook finds under /kaggle/input/ with Flickr8k attached.
"""

import csv
import shutil
import sys
import tempfile
from pathlib import Path

from helpers.config import get_config
from helpers.data import load_dataset
from helpers.sample import write_sample


def main(out: Path) -> None:
    cfg = get_config("ci")
    with tempfile.TemporaryDirectory() as folder:
        dataset = load_dataset(
            write_sample(folder, cfg.sample_images, cfg.seed), cfg.seed
        )
        (out / "Images").mkdir(parents=True)
        for name, path in dataset.image_paths.items():
            shutil.copyfile(path, out / "Images" / name)
        with open(out / "captions.txt", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["image", "caption"])
            for name, captions in dataset.captions.items():
                writer.writerows([name, caption] for caption in captions)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
