"""A BERT of a few small layers with a WordPiece vocabulary learnt from the training split.

It trains in seconds on a CPU, so tests and smoke runs exercise the full transformer path
(tokenizer, Trainer, safetensors, predictor) without any pretrained weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2)
    tokenizer.train_from_iterator(texts, trainer=trainer)
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
        self, vocab_size: int = 4000, hidden_size: int = 96, layers: int = 2, heads: int = 4, max_positions: int = 256
    ) -> None:
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.layers, self.heads, self.max_positions = layers, heads, max_positions

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
        )
        torch.manual_seed(seed)
        return BertModel(config, add_pooling_layer=False), tokenizer

    def describe(self) -> dict[str, Any]:
        return {"base_model": "tiny (trained from scratch)", "hidden_size": self.hidden_size, "layers": self.layers}
