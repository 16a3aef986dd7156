"""A typo in an override is an error naming the key, never a silently ignored setting."""

import pytest

from security_topics.errors import ConfigError
from security_topics.overrides import check_additions

CONFIG = {"thresholds": {"mode": "tune", "value": 0.5}, "model": {"name": "tfidf", "lr": 0.1}, "seed": 1}
GROUPS = {"model", "data", "experiment", "trainer"}


def test_adding_an_unknown_key_names_it_and_the_closest_known_ones():
    with pytest.raises(
        ConfigError, match=r"unknown config key 'thresholds.mod' .*did you mean thresholds.mode, thresholds.value\?"
    ):
        check_additions(["model=tfidf", "+thresholds.mod=fixed"], CONFIG, GROUPS)
    with pytest.raises(ConfigError, match=r"unknown config key 'foo' in override '\+foo=bar'.* \+\+foo=bar"):
        check_additions(["+foo=bar"], CONFIG, GROUPS)


def test_known_keys_groups_and_deliberate_additions_pass():
    check_additions(
        ["thresholds.mode=fixed", "+experiment=e5_unfrozen", "++extra=1", "hydra.run.dir=x"], CONFIG, GROUPS
    )


def test_the_entry_point_refuses_a_typo_before_any_work(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "security_topics.prepare", "data=fixture", "+data.splt.train=0.5"]
    command += [f"hydra.run.dir={tmp_path}", f"paths.processed_dir={tmp_path}/processed"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "prepare: unknown config key 'data.splt.train'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "processed").exists()
