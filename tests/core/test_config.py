from dataclasses import dataclass, field

import pytest

from audiolm.core.config import config_from_dict, config_to_dict, load_config_file, override_config
from audiolm.core.errors import ConfigError


@dataclass
class Inner:
    width: int = 4
    name: str = "x"


@dataclass
class Outer:
    layers: int = 2
    rate: float = 0.5
    kinds: tuple[int, ...] = (1, 2)
    mode: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_round_trip_through_json(tmp_path):
    cfg = Outer(layers=3, rate=1.0, kinds=(4, 5, 6), mode="a", inner=Inner(8, "y"))
    path = tmp_path / "c.json"
    import json

    path.write_text(json.dumps(config_to_dict(cfg)))
    assert load_config_file(Outer, path) == cfg


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match="unknown field.*layerz"):
        config_from_dict(Outer, {"layerz": 3})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"Outer\.layers.*integer"):
        config_from_dict(Outer, {"layers": "three"})
    with pytest.raises(ConfigError, match=r"inner\.width"):
        config_from_dict(Outer, {"inner": {"width": 1.5}})


def test_int_accepted_for_float_but_bool_is_not_int():
    assert config_from_dict(Outer, {"rate": 1}).rate == 1.0
    with pytest.raises(ConfigError):
        config_from_dict(Outer, {"layers": True})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(Outer, tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_file(Outer, bad)


def test_override_validates():
    assert override_config(Outer(), {"layers": 7}).layers == 7
    with pytest.raises(ConfigError):
        override_config(Outer(), {"nope": 1})


@dataclass
class Pair:
    betas: tuple[float, float] = (0.9, 0.95)


def test_fixed_length_tuple_keeps_values():
    assert config_from_dict(Pair, {"betas": [0.8, 0.99]}).betas == (0.8, 0.99)
    with pytest.raises(ConfigError, match="expected 2 items"):
        config_from_dict(Pair, {"betas": [0.8]})
