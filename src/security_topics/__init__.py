"""Security topics in Arabic news: training, evaluation and prediction."""

__version__ = "0.1.0"
