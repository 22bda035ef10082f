"""MLflow tracking: one parent run per study, one nested run per trial, recorded by a
logging process of its own so a slow store never stalls the dispatch of trials.

- `schema`: the tag names, in one place.
- `protocol`: the typed jobs the driver's `MlflowTracker` sends and the news it gets back.
- `tracker`: the driver's side; `process`: the logging process; `recorder`: the MLflow
  calls it makes; `models`: a trial's model in MLflow; `plots`: renderings of a front;
  `view`: what the MLflow UI shows first (the experiment's description, the saved Pareto
  view) and the address and command that open it.
"""

from paretotune.tracking.mlflow.tracker import MlflowTracker

__all__ = ["MlflowTracker"]
