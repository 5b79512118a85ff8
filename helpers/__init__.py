"""Small helper package shared by the image-captioning notebooks."""
