"""Small helper package shared by the image-captioning notebooks."""

import os

# Keras 3 reads its backend once, at its first import: every module of the package
# imports keras after this line has run.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
