"""RunConfig: one source for flags, help, validation and config.json."""

from __future__ import annotations

import json

import pytest

from mario_tui.engine.config import (
    ConfigError,
    RunConfig,
    coerce,
    field_help,
    field_label,
    parse_level_spec,
)


def test_defaults_are_valid_and_every_field_has_help():
    config = RunConfig()
    assert config.problems() == {}
    for name in config.to_dict():
        assert field_help(name), f"{name} has no docstring"
    assert field_help("lr").startswith("Adam learning rate")
    assert field_label("lr_min") == "LR min"
    dreamer = RunConfig.with_model_defaults(model="dreamer")
    assert dreamer.problems() == {} and (dreamer.eps_start, dreamer.eps_end) == (0.0, 0.0)


@pytest.mark.parametrize("changes, field, words", [
    ({"workers": 0}, "workers", "between 1 and 64"),
    ({"lr": 0.0}, "lr", "(0, 1]"),
    ({"lr": 1e-4, "lr_min": 1e-3}, "lr_min", "--lr"),
    ({"actor_lr": 0.0}, "actor_lr", "--actor-lr: must be in (0, 1]"),
    ({"critic_lr": 2.0}, "critic_lr", "--critic-lr: must be in (0, 1]"),
    ({"gamma": 1.5}, "gamma", "(0, 1]"),
    ({"reached_starts": 1.5}, "reached_starts", "--reached-starts: must be in [0, 1]"),
    ({"level": "9-1"}, "level", "valid"),
    ({"actions": "jump"}, "actions", "right_only, simple, complex"),
    ({"buffer_size": 4, "batch_size": 32}, "buffer_size", "batch"),
    ({"name": "a/b"}, "name", "letters"),
])
def test_problems_name_the_option(changes, field, words):
    problems = RunConfig(**changes).problems()
    assert field in problems
    assert words in problems[field]
    with pytest.raises(ConfigError):
        RunConfig(**changes).validate()


def test_level_specs():
    assert parse_level_spec("1-1") == ["1-1"]
    assert parse_level_spec(" Random ") == "random"
    assert parse_level_spec("1-1, 4-2,8-4") == ["1-1", "4-2", "8-4"]
    for bad in ("", "0-1", "1-5", "x", "1-1,,9-9"):
        with pytest.raises(ConfigError, match="valid|empty"):
            parse_level_spec(bad)


def test_coerce_and_json_round_trip(tmp_path):
    assert coerce("workers", "4") == 4
    assert coerce("buffer_size", "1e5") == 100_000
    assert coerce("per", "off") is False
    assert coerce("lr", "3e-4") == pytest.approx(3e-4)
    with pytest.raises(ConfigError, match="--lr"):
        coerce("lr", "nan")
    with pytest.raises(ConfigError, match="--workers"):
        coerce("workers", "2.5")
    config = RunConfig(workers=3, level="1-1,1-2", per=False)
    path = tmp_path / "config.json"
    config.save(path)
    assert json.loads(path.read_text())["workers"] == 3
    assert RunConfig.load(path) == config
    path.write_text('{"workers": 2, "bogus": 1}')
    with pytest.raises(ConfigError, match="bogus"):
        RunConfig.load(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        RunConfig.load(path)


def test_a_config_saved_before_an_option_existed_keeps_what_that_run_used(tmp_path):
    """prev_action came after runs were saved: their networks have no such input, so their config.json means False
    (their weights.pt must still load into the network they were trained as)."""
    old = RunConfig(prev_action=True).to_dict()
    del old["prev_action"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    assert RunConfig.load(path).prev_action is False
    assert RunConfig.from_dict({**old, "prev_action": True}).prev_action is True
