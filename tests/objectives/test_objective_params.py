"""Trial params: every knob of spaces._knobs is understood; defaults fill the rest."""

from __future__ import annotations

import pytest
from paretotune.objectives import DEFAULTS, KNOWN_PARAM_NAMES, resolve_params


def _names_from_knob_tables() -> set[str]:
    from paretotune.spaces import _knobs

    names = {"architecture", "optimizer", "compression", *_knobs.TOP_KNOBS}
    for table in (_knobs.FAMILY_KNOBS, _knobs.OPTIMIZER_KNOBS, _knobs.COMPRESSION_KNOBS):
        names |= {f"{owner}.{knob}" for owner, knobs in table.items() for knob in knobs}
    return names


def test_known_names_equal_the_knob_tables():
    assert set(KNOWN_PARAM_NAMES) == _names_from_knob_tables()


def test_choices_equal_the_knob_tables():
    from paretotune.objectives import COMPRESSIONS, FAMILIES, OPTIMIZERS
    from paretotune.spaces import _knobs

    assert (FAMILIES, OPTIMIZERS, COMPRESSIONS) == (
        _knobs.FAMILIES,
        _knobs.OPTIMIZERS,
        _knobs.COMPRESSIONS,
    )


def test_defaults_fill_absent_knobs():
    resolved = resolve_params({"mlp.width": 128})
    assert resolved["mlp.width"] == 128
    assert resolved["mlp.depth"] == 2
    assert resolved["sgd.momentum"] == 0.9 and resolved["sgd.nesterov"] is False
    assert resolved["compression"] == "none" and resolved["lr_schedule"] == "constant"
    assert set(resolved) == set(DEFAULTS)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"mlp.widht": 3}, "mlp.widht"),
        ({"architecture": "svm"}, "params.architecture: 'svm'"),
        ({"mlp.width": 0}, "params.mlp.width"),
        ({"batch_size": 2.5}, "params.batch_size"),
        ({"learning_rate": "fast"}, "params.learning_rate"),
        ({"augment": "yes"}, "params.augment"),
    ],
)
def test_bad_params_name_the_field(params, fragment):
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        resolve_params(params)


def test_objectives_imports_no_search_stack():
    import subprocess
    import sys

    code = (
        "import sys, objectives; "
        "print(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'optuna', 'ray', 'mlflow', 'search', 'spaces'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
