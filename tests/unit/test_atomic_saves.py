"""Saves replace a model whole or not at all; an export never replaces what is not an earlier export."""

import errno
import shutil

import pytest
from helpers import fit_tfidf

from security_topics.atomic import staging_for, swap_into_place
from security_topics.errors import ConfigError
from security_topics.export import _check_replaceable
from security_topics.train import _replace_model_dir


def _folder(path, **files):
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_a_swap_puts_the_new_folder_in_place_and_leaves_nothing_beside_it(tmp_path):
    target = _folder(tmp_path / "model", **{"card.json": "old", "weights": "old"})
    staging = _folder(staging_for(target), **{"card.json": "new"})
    swap_into_place(staging, target)
    assert {p.name: p.read_text() for p in target.iterdir()} == {"card.json": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_on_linux_the_folders_trade_places_in_one_step(tmp_path, monkeypatch):
    from pathlib import Path

    from security_topics.atomic import _exchange

    if not _exchange(_folder(tmp_path / "probe-a"), _folder(tmp_path / "probe-b")):
        pytest.skip("this system or file system has no renameat2(RENAME_EXCHANGE)")
    shutil.rmtree(tmp_path / "probe-a")
    shutil.rmtree(tmp_path / "probe-b")
    target = _folder(tmp_path / "model", **{"card.json": "old"})
    staging = _folder(staging_for(target), **{"card.json": "new"})

    def no_rename(self, other):  # the two-rename fallback would leave a moment with no model
        raise AssertionError(f"renamed {self} to {other}")

    monkeypatch.setattr(Path, "rename", no_rename)
    swap_into_place(staging, target)
    assert (target / "card.json").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_the_next_save_puts_back_a_model_left_aside_and_clears_dead_staging(tmp_path):
    import os
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)  # a process that has ended
    from security_topics.atomic import _HOST

    target = tmp_path / "model"
    _folder(tmp_path / f".model.staging-{_HOST}-{dead}-0000ab12.old", **{"card.json": "old"})  # killed between renames
    _folder(tmp_path / f".model.staging-{_HOST}-{dead}-0000cd34", **{"card.json": "half"})  # killed while copying
    kept = [
        _folder(tmp_path / f".model.staging-{_HOST}-{os.getpid()}-0000ef56", **{"card.json": "busy"}),  # saving now
        _folder(tmp_path / f".model.staging-0badc0de-{dead}-0000ef57", **{"card.json": "x"}),  # another host's
        _folder(tmp_path / f".model.x.staging-{_HOST}-{dead}-0000ef58", **{"card.json": "y"}),  # another target's
    ]
    fresh = staging_for(target)
    assert (target / "card.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model", *(p.name for p in kept)])
    assert not fresh.exists()


def test_a_save_killed_by_a_full_disk_keeps_the_earlier_model_whole(tmp_path, monkeypatch):
    earlier = fit_tfidf(tmp_path / "earlier")
    newer = fit_tfidf(tmp_path / "newer")
    target = tmp_path / "models" / "default"
    _replace_model_dir(target, earlier)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def full_disk(src, dst, **kwargs):  # the card is copied, then the disk is full
        dst.mkdir()
        shutil.copy2(src / "security_topics.json", dst)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copytree", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _replace_model_dir(target, newer)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in target.parent.iterdir()] == ["default"]  # no staging folder left behind


def test_an_export_replaces_only_an_earlier_export(tmp_path):
    trained = fit_tfidf(tmp_path / "trained")
    with pytest.raises(ConfigError, match="not an earlier export"):
        _check_replaceable(trained, tmp_path / "source")
    notes = _folder(tmp_path / "notes", **{"todo.txt": "keep me"})
    with pytest.raises(ConfigError, match="not an earlier export"):
        _check_replaceable(notes, tmp_path / "source")
    with pytest.raises(ConfigError, match="another directory than the model"):
        _check_replaceable(trained, trained)
    _check_replaceable(_folder(tmp_path / "empty"), trained)  # an empty folder is fine
    _check_replaceable(tmp_path / "new", trained)  # and a new one


def test_one_training_per_run_folder(tmp_path):
    from security_topics.train import _hold_run_dir

    with _hold_run_dir(tmp_path):
        with pytest.raises(ConfigError, match="is in use by another training"):
            _hold_run_dir(tmp_path)
    _hold_run_dir(tmp_path).close()  # free once the first training is done


def test_run_folders_differ_for_runs_started_in_the_same_second():
    from pathlib import Path

    from omegaconf import OmegaConf

    hydra_config = OmegaConf.load(Path(__file__).parents[2] / "configs" / "hydra" / "default.yaml")
    assert OmegaConf.to_container(hydra_config)["run"]["dir"].endswith("%H-%M-%S_%f}")  # microseconds
