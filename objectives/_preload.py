"""What a Ray worker of `paretotune up`'s node imports before it takes work (Ray's
``RAY_preload_python_modules``): the built-in objective's imports and its first
optimiser's (``torch._dynamo``), ~3 s of CPU a worker would otherwise spend after the
study asked for it. `up`'s raylet prestarts one such worker per CPU."""

from paretotune.objectives._evaluate import evaluate  # noqa: F401 (torch, scikit-learn's metrics)
from paretotune.objectives._training import warm_up

warm_up()
