"""Run ``blursynth train`` (for torchrun) with every rank interrupted during one step.

Used by test_train_loop's DDP resume test: ``BLURSYNTH_TEST_DIE_AT=N`` makes each rank's
N-th ``Trainer.step`` raise KeyboardInterrupt, as a kill during that step would, so that
the run stops after its last checkpoint with no rank left waiting in a collective.
"""

import os
import sys

from blursynth.cli import main
from blursynth.train.loop import Trainer

_real_step = Trainer.step
_calls = {"n": 0}


def _dying_step(self, blurred, sharp):
    _calls["n"] += 1
    if _calls["n"] == int(os.environ["BLURSYNTH_TEST_DIE_AT"]):
        raise KeyboardInterrupt
    return _real_step(self, blurred, sharp)


if __name__ == "__main__":
    Trainer.step = _dying_step
    sys.exit(main(sys.argv[1:]))
