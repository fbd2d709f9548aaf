"""blursynth: training pairs for image deblurring, and a trainer that uses them."""

__version__ = "0.1.0"
