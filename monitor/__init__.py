"""A change monitor for the Raspberry Pi camera: SSIM against a reference, a GPIO pin on change."""

__version__ = "0.1.0"
