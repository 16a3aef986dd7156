"""How each model family is fitted: a recipe per family, and the trainer settings they share."""
