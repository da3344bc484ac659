from . import ecdc as ecdc
from .processing import ClvpProcessor as ClvpProcessor
from ._clvp import (
    ClvpFeatureExtractor as ClvpFeatureExtractor,
    ClvpModelForConditionalGeneration as ClvpModelForConditionalGeneration,
    ClvpOutput as ClvpOutput,
    ClvpTokenizer as ClvpTokenizer,
    EncodecDecoderOutput as EncodecDecoderOutput,
    EncodecEncoderOutput as EncodecEncoderOutput,
    EncodecFeatureExtractor as EncodecFeatureExtractor,
    EncodecModel as EncodecModel,
    EncodecStreamDecoder as EncodecStreamDecoder,
    EncodecStreamEncoder as EncodecStreamEncoder,
    __version__ as __version__,
)
