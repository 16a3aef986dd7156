"""The command line of the experiments that judge saved models one at a time: `SCRIPT MODEL…`."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def run(doc: str, compare: Callable[[str], None]) -> None:
    """Parse the model directories from the command line and `compare` each, in the order given."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("models", nargs="+", help="saved model directories, e.g. models/pipeline")
    for path in parser.parse_args().models:
        compare(path)
