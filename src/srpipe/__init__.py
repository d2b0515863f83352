"""srpipe: real-world image super-resolution (DSGAN degradation learning + ESRGAN)."""

__version__ = "0.1.0"
