"""CLVP (Tortoise TTS) and EnCodec in Rust, with transformers' Python API.

Swap the import and keep the code::

    from clvp import ClvpModelForConditionalGeneration, ClvpProcessor, EncodecFeatureExtractor, EncodecModel

Every class takes and returns numpy arrays with transformers' shapes and dtypes; the computing calls release
the GIL, and the model objects may be shared between threads. Errors are ``ValueError``,
``FileNotFoundError`` or ``RuntimeError`` with the messages of the ``clvp`` command.
"""

from ._clvp import (
    ClvpFeatureExtractor,
    ClvpModelForConditionalGeneration,
    ClvpOutput,
    ClvpTokenizer,
    EncodecDecoderOutput,
    EncodecEncoderOutput,
    EncodecFeatureExtractor,
    EncodecModel,
    EncodecStreamDecoder,
    EncodecStreamEncoder,
    __version__,
)
from . import ecdc
from .processing import ClvpProcessor

__all__ = [
    "ClvpFeatureExtractor",
    "ClvpModelForConditionalGeneration",
    "ClvpOutput",
    "ClvpProcessor",
    "ClvpTokenizer",
    "EncodecDecoderOutput",
    "EncodecEncoderOutput",
    "EncodecFeatureExtractor",
    "EncodecModel",
    "EncodecStreamDecoder",
    "EncodecStreamEncoder",
    "ecdc",
    "__version__",
]
