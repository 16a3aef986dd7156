"""Training checkpoints leave out frozen weights (they never change; a resumed run builds them again)."""

import torch
from safetensors.torch import load_file
from transformers import TrainingArguments

from security_topics.recipes.transformer import _SmallCheckpointsTrainer


class TwoLayers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(1000, 8)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, input_ids):  # pragma: no cover - never trained here
        return {"logits": self.head(self.embedding(input_ids).mean(1))}


def test_a_checkpoint_holds_only_the_trained_weights_and_loads_back(tmp_path):
    model = TwoLayers()
    model.embedding.weight.requires_grad_(False)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = _SmallCheckpointsTrainer(model=model, args=args)
    trainer._save(str(tmp_path / "checkpoint-1"))
    saved = load_file(str(tmp_path / "checkpoint-1" / "model.safetensors"))
    assert set(saved) == {"head.weight", "head.bias"}
    result = model.load_state_dict(saved, strict=False)
    trainer._issue_warnings_after_load(result)
    assert result.missing_keys == []  # the frozen weight is expected to be missing: no warning
