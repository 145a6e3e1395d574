"""Shareable Train settings: the page URL's query parameters, parsed and checked in lopt_core/share.py."""
from __future__ import annotations

from urllib.parse import parse_qsl

from lopt_core import share

DEFAULTS = dict(model="smollm2-135m", task="sst2", method="lopt1", n=20, r=5, steps=150, batch_size=8, lr="",
                eval_every=50, eval_size=300, seed=0)
WIDTH = {"smollm2-135m": 576, "tiny": 32}.get


def parse(query: str, allowed=None, max_steps=None):
    return share.settings_from_query(dict(parse_qsl(query, keep_blank_values=True)), DEFAULTS,
                                     allowed_models=allowed, max_steps=max_steps, width=WIDTH)


def test_round_trip_keeps_every_setting_in_order():
    s = {**DEFAULTS, "method": "ulpt", "n": 10, "r": 3, "steps": 40, "lr": "0.05", "seed": 7}
    q = share.settings_to_query(s)
    assert q.startswith("model=smollm2-135m&task=sst2&method=ulpt&n=10&r=3&steps=40")
    got, errors = parse(q)
    assert errors == [] and got == {**s, "lr": "0.05"}


def test_a_sliders_whole_float_is_written_as_an_int():
    assert "n=4&r=2&" in share.settings_to_query({**DEFAULTS, "n": 4.0, "r": 2.0})


def test_blank_lr_is_left_out_and_means_the_default():
    q = share.settings_to_query(DEFAULTS)
    assert "lr=" not in q
    assert parse(q) == (DEFAULTS, [])


def test_no_query_gives_the_defaults_and_no_message():
    assert parse("") == (DEFAULTS, [])
    assert parse("view=api&__theme=dark") == (DEFAULTS, [])  # Gradio's own parameters are not ours


def test_bad_values_name_the_parameter_and_fall_back_to_defaults():
    got, errors = parse("method=lopt9&n=abc&steps=0&batch_size=2.5&lr=fast&seed=-1&task=nope")
    text = " ".join(errors)
    for name in ("method", "n", "steps", "batch_size", "lr", "seed", "task"):
        assert f"{name}=" in text, (name, errors)
    assert "lopt9" in text and "at least 1" in text
    assert got == DEFAULTS


def test_rank_above_the_methods_bound_is_refused():
    got, errors = parse("method=lopt1&n=4&r=9")
    assert got["n"] == 4 and got["r"] == 4  # the default r (5) is clamped to what LoPT-1 allows at n=4
    assert len(errors) == 1 and "r=9" in errors[0] and "LoPT-1" in errors[0] and "4" in errors[0]
    got, errors = parse("method=lopt2&n=4&r=9&model=tiny")
    assert errors == [] and got["r"] == 9
    got, errors = parse("method=lopt2&n=4&r=40&model=tiny")  # LoPT-2: r <= d = 32 on the tiny model
    assert "r=40" in errors[0] and got["r"] == 5


def test_rank_is_not_checked_where_the_method_has_none():
    got, errors = parse("method=prompt_tuning&n=4&r=9")
    assert errors == [] and got["r"] == 9


def test_model_not_allowed_on_this_host():
    got, errors = parse("model=gpt2", allowed=("smollm2-135m",))
    assert got["model"] == "smollm2-135m" and "model=gpt2" in errors[0] and "not allowed" in errors[0]
    got, errors = parse("steps=500", max_steps=200)
    assert got["steps"] == 150 and "steps=500" in errors[0] and "200" in errors[0]


def test_check_int_names_the_field():
    import pytest
    from lopt_core.config import ConfigError
    with pytest.raises(ConfigError, match="steps must be at least 1, got 0"):
        share.check_int("steps", 0)
    with pytest.raises(ConfigError, match="batch size must be a whole number"):
        share.check_int("batch_size", "two")
    assert share.check_int("eval_every", "0") == 0
