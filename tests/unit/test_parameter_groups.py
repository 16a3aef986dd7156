"""The classifier owns its optimiser groups: no decay on biases/LayerNorm, the head on its own rate."""

import torch
from transformers import BertConfig, BertModel

from security_topics.models.transformer import TopicClassifier


def classifier():
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    return TopicClassifier(BertModel(config, add_pooling_layer=False), num_labels=3)


def test_groups_split_decay_and_learning_rates():
    model = classifier()
    groups = model.parameter_groups(lr=1e-4, head_lr=1e-2, weight_decay=0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    by = {(g["lr"], g["weight_decay"]): sorted(names[id(p)] for p in g["params"]) for g in groups}
    assert by[(1e-2, 0.01)] == ["head.weight"] and by[(1e-2, 0.0)] == ["head.bias"]
    assert all("LayerNorm" in n or n.endswith("bias") for n in by[(1e-4, 0.0)])
    assert all(n.endswith("weight") and "LayerNorm" not in n for n in by[(1e-4, 0.01)])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_frozen_parameters_are_left_out_and_head_lr_defaults_to_lr():
    model = classifier()
    model.encoder.get_input_embeddings().weight.requires_grad_(False)
    groups = model.parameter_groups(lr=1e-4, head_lr=None, weight_decay=0.01)
    listed = {id(p) for g in groups for p in g["params"]}
    assert id(model.encoder.get_input_embeddings().weight) not in listed
    assert {g["lr"] for g in groups} == {1e-4}
    assert isinstance(model.configure_optimizers(1e-4, None, 0.01), torch.optim.AdamW)
