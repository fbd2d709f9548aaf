"""Run ``blursynth train`` (for torchrun) recording each rank's parameters after every step.

Used by test_arch_ddp: after each update of ``--arch`` (``BLURSYNTH_TEST_ARCH``) a rank writes
a digest of its generator's and critic's parameters to ``BLURSYNTH_TEST_STATES/rank<R>.json``,
so the test can check that DistributedDataParallel kept both networks equal on every rank
(only rank 0 writes checkpoints). Buffers are left out: BatchNorm's running statistics follow
each rank's own batch after DDP's broadcast at the start of a forward pass.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

from blursynth.cli import _exit_now, main
from blursynth.train.archs import get_arch
from blursynth.train.trainer import unwrap


def digest(module):
    h = hashlib.sha256()
    for name, p in unwrap(module).named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    update = get_arch(os.environ["BLURSYNTH_TEST_ARCH"]).update
    real_step = update.step
    out = Path(os.environ["BLURSYNTH_TEST_STATES"])
    steps = []

    def recording_step(self, blurred, sharp):
        losses = real_step(self, blurred, sharp)
        steps.append({"generator": digest(self.g),
                      "critic": None if self.d is None else digest(self.d)})
        (out / f"rank{os.environ['RANK']}.json").write_text(json.dumps(steps))
        return losses

    update.step = recording_step
    # Ends as the blursynth command does (exit handlers, flushed output, no interpreter
    # teardown): a teardown's C++ destructors once aborted rank 1 after a finished run
    # ("terminate called without an active exception"), which a user's command never runs.
    _exit_now(main(sys.argv[1:]))
