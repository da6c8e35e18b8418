"""A change monitor for the Raspberry Pi camera: SSIM against a reference, a GPIO pin on change."""

import os

__version__ = "0.1.0"

# OpenCV decodes any image whose header claims up to 2**30 pixels: one corrupt file in an
# image folder could ask a Pi for gigabytes. Frames are at most 8192x8192 (the config's
# bound) and in practice far smaller; OpenCV reads this once, at its first decode.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 26))
