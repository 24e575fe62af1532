"""Small stages with controllable failures, for testing the engine without audio."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

from songcorpus.pipeline.stage import Reject, Result, Stage
from songcorpus.schemas.base import Resources, StageConfig


class ToyConfig(StageConfig):
    resources: Resources = Resources(num_cpus=1.0, batch_size=2, max_workers=2)
    fail_items: tuple[str, ...] = ()
    reject_items: tuple[str, ...] = ()
    sleep_s: float = 0.0
    #: the worker process dies (os._exit) the first time it meets one of these items
    die_items: tuple[str, ...] = ()
    marker_dir: str = ""
    #: the worker process dies (os._exit) every time it meets one of these items: a poison pill
    always_die_items: tuple[str, ...] = ()
    #: each worker's setup leaves a file here, so a test can count the actors a stage started
    setup_dir: str = ""


class ToyStage(Stage[ToyConfig]):
    version = 1

    def setup(self) -> None:
        self.setup_thread = threading.get_ident()
        if self.config.setup_dir:
            Path(self.config.setup_dir, f"{self.name}-{os.getpid()}-{uuid.uuid4().hex}").touch()

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        cfg = self.config
        time.sleep(cfg.sleep_s)
        if item_id in cfg.fail_items:
            raise ValueError(f"boom on {item_id}")
        if item_id in cfg.reject_items:
            raise Reject("toy_reject", f"{item_id} is not wanted")
        if item_id in cfg.always_die_items:
            os._exit(1)
        if item_id in cfg.die_items:
            marker = Path(cfg.marker_dir, item_id)
            if not marker.exists():
                marker.touch()
                os._exit(1)
        same_thread = threading.get_ident() == self.setup_thread
        return Result(
            {**record, "path": [*record.get("path", []), self.name], "on_setup_thread": same_thread},
            audio_seconds=1.0,
        )


class ToyA(ToyStage):
    name = "toy_a"


class ToyB(ToyStage):
    name = "toy_b"


class ToyC(ToyStage):
    name = "toy_c"


class ToyD(ToyStage):
    name = "toy_d"
