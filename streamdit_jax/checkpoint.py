"""Checkpoints with orbax: train state + config (JSON) + data-iterator state, atomic, async, keep-N.

Restores go into an abstract tree built with the CURRENT mesh (``training.steps.abstract_train_state``), so a
checkpoint written on 8 devices loads on 1 device or on any other mesh.
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional

import orbax.checkpoint as ocp

from streamdit_jax.fileio import write_text_atomic

STATE, CONFIG, DATA = "state", "config", "data"
# every finished step gets {relative path: size} of its array files (the state item): a truncated or emptied file is
# named on restore (restore.verify_step_sizes) before orbax reads it. Sizes, not digests: hashing a large model's
# checkpoint at every save would stall training; exports, written once, record sha256 (training.export). The JSON
# items (config, data) are left out: a damaged one fails to parse and is named as such.
SIZES_FILE = "file_sizes.json"
MARKER = "commit_success.txt"  # orbax's commit markers (rewritten by exports): not recorded


def file_sizes(step_dir: str) -> dict[str, int]:
    """{path relative to ``step_dir``: size in bytes} of the array files of one saved step (its state item)."""
    out = {}
    for dirpath, _, filenames in os.walk(os.path.join(step_dir, STATE)):
        for name in filenames:
            if name not in (SIZES_FILE, MARKER) and ".tmp" not in name:
                path = os.path.join(dirpath, name)
                out[os.path.relpath(path, step_dir)] = os.path.getsize(path)
    return dict(sorted(out.items()))


class Checkpointer:
    """Thin wrapper over ``ocp.CheckpointManager`` with the project's three items."""

    def __init__(self, directory: str, *, max_to_keep: int = 3, async_save: bool = True, create: bool = True):
        self.directory = os.path.abspath(os.path.join(directory, "checkpoints"))
        self._unrecorded: set[int] = set()
        self.manager = ocp.CheckpointManager(
            self.directory,
            item_names=(STATE, CONFIG, DATA),
            item_handlers={STATE: ocp.StandardCheckpointHandler(), CONFIG: ocp.JsonCheckpointHandler(),
                           DATA: ocp.JsonCheckpointHandler()},
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                                 enable_async_checkpointing=async_save))

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, config: dict, data_state: Optional[dict] = None, *, force: bool = False) -> bool:
        self.record_sizes()  # the previous save is finished by now (orbax saves one step at a time)
        self._unrecorded.add(int(step))
        args = {STATE: ocp.args.StandardSave(state), CONFIG: ocp.args.JsonSave(config),
                DATA: ocp.args.JsonSave(data_state or {})}
        return self.manager.save(step, args=ocp.args.Composite(**args), force=force)

    def restore(self, abstract_state, step: Optional[int] = None) -> tuple[Any, dict, dict]:
        """(state placed per ``abstract_state``'s shardings, config dict, data-iterator state dict)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        out = self.manager.restore(step, args=ocp.args.Composite(
            **{STATE: ocp.args.StandardRestore(abstract_state), CONFIG: ocp.args.JsonRestore(),
               DATA: ocp.args.JsonRestore()}))
        return out[STATE], dict(out[CONFIG]), dict(out[DATA] or {})

    def read_config(self, step: Optional[int] = None) -> dict:
        """The config saved beside the state, without touching the arrays."""
        return self._read_json(CONFIG, step)

    def read_data(self, step: Optional[int] = None) -> dict:
        """The data item (iterator state, or an inference export's description), without touching the arrays."""
        return self._read_json(DATA, step)

    def _read_json(self, item: str, step: Optional[int]) -> dict:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        path = os.path.join(self.directory, str(step), item, "metadata")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f) or {}
        out = self.manager.restore(step, args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))
        return dict(out[item] or {})

    def wait(self) -> None:
        self.manager.wait_until_finished()
        self.record_sizes()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.record_sizes()
        self.manager.close()

    def record_sizes(self) -> None:
        """Writes SIZES_FILE into the steps this Checkpointer saved, once finished (primary process, local file
        systems only)."""
        import jax
        pending, self._unrecorded = self._unrecorded, set()
        if not pending or jax.process_index() != 0 or "://" in self.directory:
            return
        self.manager.wait_until_finished()
        for step in sorted(pending):
            step_dir = os.path.join(self.directory, str(step))
            record = os.path.join(step_dir, SIZES_FILE)
            if os.path.isdir(step_dir):
                write_text_atomic(record, json.dumps(file_sizes(step_dir), indent=0))
