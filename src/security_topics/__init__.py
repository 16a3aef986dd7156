"""Security topics in Arabic news: training, evaluation and prediction.

`from security_topics import Predictor` is the entry point for users' code; it is imported
lazily so that the command line and configs do not pay for torch until they need it.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Predictor"]

if TYPE_CHECKING:
    from security_topics.predictor import Predictor


def __getattr__(name: str) -> Any:
    if name == "Predictor":
        from security_topics.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'security_topics' has no attribute {name!r}")
