"""Run ``blursynth train`` (for torchrun) with rank 0 interrupted during one step.

Used by test_train_loop's DDP resume test: ``BLURSYNTH_TEST_DIE_AT=N`` makes rank 0's N-th
``Trainer.step`` raise KeyboardInterrupt, as a kill during that step would; torchrun then stops
the other ranks. Only rank 0 dies because it alone writes checkpoints: had another rank died
first, torchrun could stop rank 0 while it was still writing the previous step's checkpoint.
"""

import os
import sys

from blursynth.cli import _exit_now, main
from blursynth.train.trainer import Trainer

_real_step = Trainer.step
_calls = {"n": 0}


def _dying_step(self, blurred, sharp):
    _calls["n"] += 1
    if _calls["n"] == int(os.environ["BLURSYNTH_TEST_DIE_AT"]) and os.environ["RANK"] == "0":
        raise KeyboardInterrupt
    return _real_step(self, blurred, sharp)


if __name__ == "__main__":
    Trainer.step = _dying_step
    _exit_now(main(sys.argv[1:]))  # as the blursynth command ends (test_arch_ddp's rank script too)
