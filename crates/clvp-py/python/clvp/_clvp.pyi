"""Type stubs of the compiled module (re-exported by ``clvp``)."""

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = npt.ArrayLike

class EncodecEncoderOutput:
    """transformers' ``EncodecEncoderOutput``."""

    audio_codes: npt.NDArray[np.int64]
    """int64 ``[chunks, batch, n_q, frames]``; the last chunk right-padded with 0 by ``last_frame_pad_length``."""
    audio_scales: Optional[npt.NDArray[np.float32]]
    """float32 ``[chunks, batch]``, or ``None`` for models that do not normalise."""
    last_frame_pad_length: int
    def __getitem__(self, key: Union[int, str]) -> Any: ...

class EncodecDecoderOutput:
    """transformers' ``EncodecDecoderOutput``."""

    audio_values: npt.NDArray[np.float32]
    """float32 ``[batch, channels, length]``."""
    def __getitem__(self, key: Union[int, str]) -> Any: ...

class EncodecFeatureExtractor:
    """transformers' ``EncodecFeatureExtractor``: layout, chunk-aware padding and the padding mask."""

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = 24000,
        padding_value: float = 0.0,
        chunk_length_s: Optional[float] = None,
        overlap: Optional[float] = None,
    ) -> None: ...
    @staticmethod
    def from_pretrained(path: str) -> "EncodecFeatureExtractor":
        """A local checkpoint directory or a hub id: its ``preprocessor_config.json``, else the one its
        ``config.json`` implies."""
    @property
    def feature_size(self) -> int: ...
    @property
    def sampling_rate(self) -> int: ...
    @property
    def padding_value(self) -> float: ...
    @property
    def chunk_length(self) -> Optional[int]: ...
    @property
    def chunk_stride(self) -> Optional[int]: ...
    def __call__(
        self,
        raw_audio: Union[ArrayLike, str, "os.PathLike[str]", Sequence[Union[ArrayLike, str, "os.PathLike[str]"]]],
        padding: Union[bool, str, None] = None,
        truncation: bool = False,
        max_length: Optional[int] = None,
        return_tensors: Optional[str] = None,
        sampling_rate: Optional[int] = None,
    ) -> Dict[str, npt.NDArray[Any]]:
        """One clip (``[n]`` mono, ``[2, n]`` stereo), a list of clips, or audio file path(s) →
        ``{"input_values": float32 [B, C, L], "padding_mask": int32 [B, L]}`` (the mask when padding), as
        transformers with ``return_tensors="np"``. Files are decoded and converted to the extractor's channels and
        rate as the ``clvp`` command converts them; arrays must already be at ``sampling_rate``."""

class EncodecModel:
    """transformers' ``EncodecModel`` (``encodec_24khz``, ``encodec_32khz``, ``encodec_48khz`` layouts)."""

    @staticmethod
    def from_pretrained(path: str, device: str = "cpu", stream_frames: Optional[int] = None) -> "EncodecModel":
        """A local checkpoint directory or a hub id (``facebook/encodec_24khz[@revision]``). ``device``: ``cpu``,
        ``ndarray``, ``wgpu``, ``cuda[:N]``. ``stream_frames``: the stream objects' block in code frames (1: frame by
        frame)."""
    @property
    def sampling_rate(self) -> int: ...
    @property
    def audio_channels(self) -> int: ...
    @property
    def target_bandwidths(self) -> List[float]: ...
    def encode(
        self,
        input_values: ArrayLike,
        padding_mask: Optional[ArrayLike] = None,
        bandwidth: Optional[float] = None,
    ) -> EncodecEncoderOutput:
        """``input_values`` ``[batch, channels, length]`` at the model's rate; ``padding_mask`` ``[batch, length]``
        of 1/0; ``bandwidth`` one of ``target_bandwidths`` (``None``: the smallest)."""
    def decode(
        self,
        audio_codes: ArrayLike,
        audio_scales: Optional[ArrayLike] = None,
        padding_mask: Optional[ArrayLike] = None,
        last_frame_pad_length: int = 0,
    ) -> EncodecDecoderOutput:
        """Codes ``[chunks, batch, n_q, frames]`` to audio ``[batch, channels, length]`` (cut to ``padding_mask``'s
        length when given)."""
    def stream_encoder(
        self,
        bandwidth: Optional[float] = None,
        sampling_rate: Optional[int] = None,
        channels: Optional[int] = None,
    ) -> "EncodecStreamEncoder":
        """A live encoder of audio at ``sampling_rate`` Hz with ``channels`` channels (default: the model's)."""
    def stream_decoder(self, num_codebooks: int, audio_length: Optional[int] = None) -> "EncodecStreamDecoder":
        """A live decoder of codes of ``num_codebooks`` codebooks, cut to ``audio_length`` when given."""

class EncodecStreamEncoder:
    """Push PCM as it arrives; receive the code frames that are final (docs/streaming.md)."""

    def push(self, block: ArrayLike) -> List[Dict[str, Any]]:
        """A block ``[channels, n]`` (or ``[n]`` for one channel). Returns events:
        ``{"type": "frames", "codes": int64 [n_q, T]}`` and ``{"type": "end_segment", "scale": float | None}``."""
    def finish(self) -> List[Dict[str, Any]]:
        """The end of the input: the remaining events."""
    @property
    def audio_length(self) -> Optional[int]:
        """Samples per channel encoded (at the model's rate), once finished."""

class EncodecStreamDecoder:
    """Push code frames as they arrive; receive the samples that are final."""

    def push(self, codes: ArrayLike) -> npt.NDArray[np.float32]:
        """Codes ``[n_q, T]``; returns samples ``[channels, n]``."""
    def end_segment(self, scale: Optional[float] = None) -> npt.NDArray[np.float32]:
        """The end of a chunk (chunked models), with its scale."""
    def finish(self) -> npt.NDArray[np.float32]:
        """The end of the codes: the remaining samples."""

def compress(model: EncodecModel, wav: ArrayLike, sampling_rate: Optional[int] = None, bandwidth: float = 6.0) -> bytes:
    """Meta's ``encodec.compress``: ``wav`` ``[channels, length]`` to the bytes of an ``.ecdc`` file."""

def decompress(compressed: bytes, model: EncodecModel) -> Tuple[npt.NDArray[np.float32], int]:
    """Meta's ``encodec.decompress``: ``(wav [channels, length], sample_rate)``."""

class ClvpTokenizer:
    """transformers' ``ClvpTokenizer``."""

    @staticmethod
    def from_pretrained(path: Optional[str] = None) -> "ClvpTokenizer":
        """A checkpoint directory, or Tortoise's embedded vocabulary when ``None``."""
    def __call__(self, text: Union[str, Sequence[str]], return_tensors: Optional[str] = None) -> Dict[str, Any]:
        """``{"input_ids", "attention_mask"}``; lists are padded to the longest; ``return_tensors="np"`` gives int64
        arrays."""
    def encode(self, text: str) -> List[int]: ...
    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...
    def batch_decode(self, sequences: Sequence[Sequence[int]], skip_special_tokens: bool = False) -> List[str]: ...
    @property
    def vocab_size(self) -> int: ...

class ClvpFeatureExtractor:
    """transformers' ``ClvpFeatureExtractor``."""

    @staticmethod
    def from_pretrained(path: Optional[str] = None) -> "ClvpFeatureExtractor":
        """A checkpoint directory (``preprocessor_config.json``), or Tortoise's settings when ``None``."""
    def __call__(
        self,
        raw_speech: Union[ArrayLike, str, "os.PathLike[str]", Sequence[Union[ArrayLike, str, "os.PathLike[str]"]]],
        sampling_rate: Optional[int] = None,
        return_tensors: str = "np",
    ) -> Dict[str, npt.NDArray[Any]]:
        """One clip ``[n]``, a batch ``[B, n]`` or a list of clips at 22 050 Hz, or audio file paths (decoded,
        downmixed and resampled as the ``clvp`` command loads voices): ``input_features`` float32 ``[B, 80, T]``
        and ``attention_mask`` int32 ``[B, max_length]``."""

class ClvpModelForConditionalGeneration:
    """transformers' ``ClvpModelForConditionalGeneration``: generation, ranking and the two encoders' features."""

    @staticmethod
    def from_pretrained(path: str, device: str = "cpu", decoder_weights: str = "f32") -> "ClvpModelForConditionalGeneration":
        """A checkpoint directory or hub id, or Tortoise's own files (a folder with ``autoregressive.pth`` and
        ``clvp2.pth``, or the path of either); ``decoder_weights`` ``"f32"``, ``"bf16"`` or ``"int8"`` (weight-only, a scale per output channel)."""
    def generate(
        self,
        input_ids: Union[ArrayLike, str, None] = None,
        input_features: Union[ArrayLike, str, Sequence[Union[str, ArrayLike]], None] = None,
        attention_mask: Optional[ArrayLike] = None,
        *,
        text: Optional[str] = None,
        voices: Union[str, ArrayLike, Sequence[Union[str, ArrayLike]], None] = None,
        preset: Optional[str] = None,
        do_sample: Optional[bool] = None,
        num_return_sequences: Optional[int] = None,
        num_beams: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        repetition_penalty: Optional[float] = None,
        length_penalty: Optional[float] = None,
        max_new_tokens: Optional[int] = None,
        pad_to_max_mel_tokens: Optional[int] = None,
        seed: Optional[int] = None,
        prefill_positions: str = "tortoise",
    ) -> "ClvpOutput":
        """transformers' ``generate(input_ids [1, n], input_features [F, 80, T], attention_mask)`` on
        ``ClvpProcessor``'s output (each feature row conditions its own ``num_return_sequences`` candidates), or the
        command's ``generate(text, voices)`` (22 050 Hz clips or audio file paths, their conditionings averaged as
        Tortoise does). Generation arguments as transformers', on a Tortoise ``preset`` (default ultra_fast's
        sampling, 100 new tokens); ``prefill_positions`` ``"tortoise"``,
        ``"tortoise_no_cache"`` or ``"hf523"``."""
    def get_text_features(self, input_ids: ArrayLike, attention_mask: Optional[ArrayLike] = None) -> npt.NDArray[np.float32]:
        """The text encoder's projected embeddings ``[rows, projection_dim]`` (not normalised)."""
    def get_speech_features(self, speech_ids: ArrayLike) -> npt.NDArray[np.float32]:
        """The speech encoder's projected embeddings of code rows ``[rows, projection_dim]`` (not normalised)."""

class ClvpOutput:
    """transformers' ``ClvpOutput`` of ``generate``: attributes, or keys (``out["speech_ids"]``)."""

    speech_ids: npt.NDArray[np.int64]
    """Fixed speech codes ``[N, n]``."""
    logits_per_text: npt.NDArray[np.float32]
    """``[1, N]``."""
    logits_per_speech: npt.NDArray[np.float32]
    """``[N, 1]``."""
    text_embeds: npt.NDArray[np.float32]
    """L2-normalised ``[1, P]``."""
    speech_embeds: npt.NDArray[np.float32]
    """L2-normalised ``[N, P]``."""
    ranking: List[int]
    """Candidate indices, best first."""
    sequences_scores: Optional[npt.NDArray[np.float32]]
    """Beam search: the beams' length-normalised scores ``[N]``."""
    def __getitem__(self, key: str) -> Any: ...
    def __contains__(self, key: str) -> bool: ...
    def keys(self) -> List[str]: ...
