"""Typos in command-line overrides are errors: `+thresholds.mod=fixed` would otherwise add a key
nobody reads and train with `thresholds.mode=tune`, silently.

Hydra refuses `key=value` for a key the configs do not define, but `+key=value` adds one. Here a
`+` override must add a config group (`+experiment=…`); any other key it adds is an error naming it
and the closest known keys. `++key=value` stays the way to add a key on purpose.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from security_topics.errors import ConfigError


def check_additions(overrides: Sequence[str], config: Mapping[str, Any], groups: Collection[str]) -> None:
    """Raise ConfigError for the first `+key=value` override whose key is not a config group."""
    for override in overrides:
        if not override.startswith("+") or override.startswith("++"):
            continue
        key = override[1:].split("=", 1)[0].strip()
        if key in groups or key.split("@", 1)[0] in groups:
            continue
        known = [k for k in _keys(config) if k != key and not k.startswith(key + ".") and not key.startswith(k + ".")]
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"unknown config key {key!r} in override {override!r}{hint}: the configs define no such key; "
            f"fix its spelling, or write +{override} to add it on purpose"
        )


def _keys(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for name, value in node.items():
        key = f"{prefix}{name}"
        yield key
        if isinstance(value, Mapping):
            yield from _keys(value, key + ".")


def check_run_overrides(config: Any) -> None:
    """`check_additions` on the overrides of the running Hydra job (an entry point's first call)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_config = HydraConfig.get()
    groups = {name.split("/")[-1] for name in hydra_config.runtime.choices} | set(hydra_config.runtime.choices)
    check_additions(list(hydra_config.overrides.task), OmegaConf.to_container(config, resolve=False), groups)
