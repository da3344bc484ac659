"""transformers' ``ClvpProcessor``: the tokenizer and the feature extractor behind one call.

A composition with no computation of its own (both halves are in Rust), so it is plain Python.
"""

from typing import Any, Dict, Optional

from ._clvp import ClvpFeatureExtractor, ClvpTokenizer


class ClvpProcessor:
    """``ClvpProcessor(feature_extractor, tokenizer)``; ``__call__(text=..., audio=..., sampling_rate=...)`` returns
    the feature extractor's ``input_features`` with the tokenizer's ``input_ids`` and ``attention_mask``, which
    ``ClvpModelForConditionalGeneration.generate`` takes as they are."""

    def __init__(self, feature_extractor: ClvpFeatureExtractor, tokenizer: ClvpTokenizer):
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(cls, path: Optional[str] = None) -> "ClvpProcessor":
        """A checkpoint directory (``vocab.json``, ``merges.txt``, ``preprocessor_config.json``), or Tortoise's
        vocabulary and settings when ``None``."""
        return cls(ClvpFeatureExtractor.from_pretrained(path), ClvpTokenizer.from_pretrained(path))

    def __call__(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        """As transformers: ``raw_speech=`` or ``audio=`` (a clip at 22 050 Hz, a list of clips, or audio file
        paths), ``sampling_rate=``, ``text=`` (a str or a list), ``return_tensors=`` ("np"). With both, the text's
        ``attention_mask`` replaces the feature extractor's."""
        raw_speech = kwargs.pop("raw_speech", None)
        audio = raw_speech if raw_speech is not None else kwargs.pop("audio", None)
        sampling_rate = kwargs.pop("sampling_rate", None)
        text = kwargs.pop("text", None)
        return_tensors = kwargs.pop("return_tensors", "np")
        if args:
            if audio is not None:
                raise ValueError("audio given both positionally and by keyword")
            audio, args = args[0], args[1:]
        if args or kwargs:
            raise ValueError(f"unexpected arguments: {list(args) + sorted(kwargs)}")
        if audio is None and text is None:
            raise ValueError("You need to specify either an `audio` or `text` input to process.")
        inputs: Dict[str, Any] = {}
        if audio is not None:
            inputs = dict(self.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors="np"))
        if text is not None:
            encodings = self.tokenizer(text, return_tensors=return_tensors)
            if audio is None:
                return dict(encodings)
            inputs["input_ids"] = encodings["input_ids"]
            inputs["attention_mask"] = encodings["attention_mask"]
        return inputs

    def batch_decode(self, *args: Any, **kwargs: Any) -> Any:
        """The tokenizer's ``batch_decode``."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        """The tokenizer's ``decode``."""
        return self.tokenizer.decode(*args, **kwargs)
