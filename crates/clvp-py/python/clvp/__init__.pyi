from . import ecdc as ecdc
from ._clvp import (
    ClvpFeatureExtractor as ClvpFeatureExtractor,
    ClvpModelForConditionalGeneration as ClvpModelForConditionalGeneration,
    ClvpTokenizer as ClvpTokenizer,
    EncodecDecoderOutput as EncodecDecoderOutput,
    EncodecEncoderOutput as EncodecEncoderOutput,
    EncodecModel as EncodecModel,
    EncodecStreamDecoder as EncodecStreamDecoder,
    EncodecStreamEncoder as EncodecStreamEncoder,
    __version__ as __version__,
)
