"""Results: Pareto maths on plain arrays, the immutable trial records read from Optuna,
choosing among them (constraints, best, knee, weighted), and the `Client` API."""
