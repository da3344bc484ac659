"""Meta's ``.ecdc`` container, byte-compatible with ``encodec.compress`` / ``encodec.decompress``."""

from ._clvp import compress, decompress

__all__ = ["compress", "decompress"]
