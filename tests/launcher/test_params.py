"""Parameter values given as text (`-p name=value`, Katib's trial arguments), in kfg's words."""

from __future__ import annotations

import pytest

from kfg.launcher.params import ParameterError, convert, parse_override

TYPES = {"n_estimators": "int", "lr": "float", "layers": "list", "flag": "bool"}


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("n_estimators=abc", "parameter `n_estimators` (int): `abc` is not a number"),
        ("n_estimators=1.5", "parameter `n_estimators` (int): `1.5` is not a whole number"),
        ("lr=fast", "parameter `lr` (float): `fast` is not a number"),
        ("lr=inf", "parameter `lr` (float): `inf` is not a finite number"),
        ("layers=[1,", "parameter `layers` (list): `[1,` is not a JSON list (Expecting value)"),
        ("layers={}", "parameter `layers` (list): `{}` is not a JSON list"),
        ("flag=maybe", "parameter `flag` (bool): `maybe` is not true or false"),
    ],
)
def test_bad_values_are_refused_in_plain_words(argument: str, message: str) -> None:
    with pytest.raises(ParameterError) as refused:
        parse_override(argument, TYPES)
    assert str(refused.value) == message
    assert "could not convert" not in str(refused.value)


def test_good_values_convert() -> None:
    assert convert("n", "int", "16.0") == 16  # as Katib writes a whole double
    assert convert("lr", "float", "1e-3") == 0.001
    assert convert("layers", "list", "[1, 2]") == [1, 2]
