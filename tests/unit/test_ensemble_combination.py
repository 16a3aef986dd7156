"""How an ensemble averages its members: probabilities (older cards) or logits, chosen in config."""

import numpy as np
import pytest
from helpers import FakeModel

from security_topics.errors import ConfigError, ModelDirError
from security_topics.labels import LabelSet
from security_topics.models.card import ModelCard
from security_topics.models.ensemble import EnsembleModel, combine
from security_topics.recipes.ensemble import EnsembleRecipe


def _ensemble(**settings):
    members = [FakeModel({"t": [0.999, 0.02]}), FakeModel({"t": [0.60, 0.30]})]
    card = ModelCard("ensemble", ["a", "b"], [0.5, 0.5], {}, settings={"members": ["m1", "m2"], **settings})
    return EnsembleModel(card, members)


def test_averaged_logits_let_a_sure_member_through_where_averaged_probabilities_cap_it():
    sure, unsure = np.array([[0.999]]), np.array([[0.60]])
    assert combine([sure, unsure], [0.5, 0.5], "probabilities")[0, 0] == pytest.approx(0.7995)
    assert combine([sure, unsure], [0.5, 0.5], "logits")[0, 0] == pytest.approx(0.9748, abs=1e-4)
    # two members that disagree equally either side of 0.5 cancel out either way
    assert combine([np.array([0.9]), np.array([0.1])], [0.5, 0.5], "logits")[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ensemble combination must be one of"):
        combine([sure, unsure], [0.5, 0.5], "max")


def test_a_card_without_a_combination_averages_probabilities_as_older_models_did():
    older = _ensemble(weights=[0.5, 0.5]).score(["t", "unknown"]).probs
    assert older[0] == pytest.approx([0.7995, 0.16])
    assert older[1] == pytest.approx([0.0, 0.0])
    logits = _ensemble(weights=[0.5, 0.5], combination="logits").score(["t"]).probs
    assert logits[0, 0] == pytest.approx(0.9748, abs=1e-4) and logits[0, 1] < 0.16


def test_an_unknown_combination_in_a_card_names_the_field():
    with pytest.raises(ModelDirError, match="field 'settings.combination': 'median'"):
        _ensemble(weights=[0.5, 0.5], combination="median")


def test_the_recipe_refuses_an_unknown_combination_and_tunes_weights_for_the_one_it_has():
    with pytest.raises(ConfigError, match="model.combination must be one of"):
        EnsembleRecipe("e", {"x": None, "y": None}, combination="median")
    labels = LabelSet.of(["a"])
    y = np.array([[1], [1], [0], [0]])
    # member 1 ranks every row right; member 2 ranks them backwards: the weight leans to member 1
    good, bad = np.array([[0.9], [0.8], [0.2], [0.1]]), np.array([[0.1], [0.2], [0.8], [0.9]])
    for how in ("probabilities", "logits"):
        recipe = EnsembleRecipe("e", {"x": None, "y": None}, combination=how)
        weights = recipe.choose_weights([good, bad], y, labels)
        assert weights[0] > 0.5 and sum(weights) == pytest.approx(1.0)
