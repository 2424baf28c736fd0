"""TrainConfig's parts: every setting in exactly one typed part; flat and grouped TOML files load alike."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import TRAIN_PARTS, TrainConfig, build


def test_every_setting_is_in_exactly_one_part_and_the_defaults_agree():
    owners = [tf for _, fields in TRAIN_PARTS.values() for tf in fields.values()]
    assert sorted(owners) == sorted(f.name for f in dataclasses.fields(TrainConfig))
    assert len(owners) == len(set(owners))
    parts = TrainConfig().parts()
    for name, (cls, _) in TRAIN_PARTS.items():
        assert getattr(parts, name) == cls(), f"the {name} part's defaults differ from TrainConfig's"


def test_parts_carry_the_values():
    p = TrainConfig(tau_mode="fixed", tau=0.3, tau0_formula="full", lr=5e-4, model="lightgcn", seed=9).parts()
    assert (p.temperature.mode, p.temperature.tau, p.temperature.formula) == ("fixed", 0.3, "full")
    assert p.optimizer.lr == 5e-4 and p.model.name == "lightgcn" and p.runtime.seed == 9


def test_a_grouped_file_loads_like_the_flat_one(tmp_path):
    flat = tmp_path / "flat.toml"
    flat.write_text('[train]\nlr = 1e-4\ntau_mode = "adap-tau0"\ntau_scale = 0.5\nnegatives = "grouped"\n')
    grouped = tmp_path / "grouped.toml"
    grouped.write_text('[train]\nlr = 1e-4\n[train.temperature]\nmode = "adap-tau0"\nscale = 0.5\n'
                       '[train.loss]\nnegatives = "grouped"\n')
    assert build(TrainConfig, grouped, "train") == build(TrainConfig, flat, "train")


@pytest.mark.parametrize("text,message", [
    ('[train]\n[train.temperature]\nwarmup = 3\n', r"unknown setting\(s\) warmup in \[train.temperature\]"),
    ('[train]\ntau_mode = "fixed"\n[train.temperature]\nmode = "none"\n', "set both in"),
])
def test_a_wrong_grouped_file_is_one_readable_error(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UserError, match=message):
        build(TrainConfig, f, "train")


@given(st.text(max_size=40))
@settings(max_examples=150, deadline=None)
def test_config_toml_round_trips_any_string(text):
    """Any string a user can put in a setting (quotes, backslashes, control characters, DEL,
    astral characters) comes back from config.toml unchanged."""
    from adaptau_cli.base.settings import PreprocessConfig, dump_toml, read_toml, to_dict

    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")   # a file holds UTF-8
    for odd in (text, 'a "quoted" \\ back\\slash\nnew line\ttab \x01 ctrl \x7f del é 😀'):
        cfg = PreprocessConfig(dataset="synthetic", user_col=odd, sep="\t")
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / "config.toml"
            f.write_text(dump_toml({"dataset": to_dict(cfg)}), encoding="utf-8")
            again = read_toml(f)["dataset"]
        assert again["user_col"] == odd and again["sep"] == "\t"