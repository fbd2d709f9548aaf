"""``blursynth build``: run a whole pipeline from a pinned TOML recipe.

A recipe names its inputs and an ordered list of steps; each step runs one
generator (or the trainer) with the options its command takes, writing to
``<out>/<step name>``. Values ``"@name"`` refer to an input or to an earlier
step's output. Everything is validated before the first step runs; every
manifest written records the recipe's fingerprint; rerunning resumes.

Recipe layout::

    [build]
    seed = 0                       # default seed of every step
    out = "builds/NAME"            # default output folder

    [inputs.photos]                # a folder of photos: scikit-image samples ...
    skimage = ["astronaut", "coffee"]
    # path = "my/photos"           # ... or a folder (relative to the recipe file)

    [[steps]]
    name = "bank"
    run = "trajectories"           # trajectories | blur | render-clip | frames-average |
    n = 2000                       # import | bgan-train | bgan-blur | train | evaluate

The package: :mod:`.recipe` reads and checks a recipe file (naming the line at fault),
:mod:`.steps` holds the table of step kinds, :mod:`.run` plans and runs.
"""

from .run import Plan, describe_plan, plan_build, run_build

__all__ = ["Plan", "describe_plan", "plan_build", "run_build"]
