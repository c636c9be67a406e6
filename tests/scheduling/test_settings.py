"""SchedulerSettings: precedence of additional_config over environment, and one clear error per bad value."""

import math

import pytest

from pars.scheduling import SchedulerSettings, SettingsError


def test_additional_config_wins_over_environment_which_wins_over_defaults():
    settings = SchedulerSettings.from_sources(
        {"pars": {"aging_rate": 2, "predictor": "/ckpt"}},
        {"PARS_AGING_RATE": "9", "PARS_MAX_WAIT_S": "7.5", "PARS_PREDICTOR": "/other"},
    )
    assert settings.aging_rate == 2.0 and settings.predictor == "/ckpt"
    assert settings.max_wait_s == 7.5
    assert settings.budget_ms == SchedulerSettings().budget_ms
    assert settings.aging.max_wait_s == 7.5


def test_integers_from_the_environment_and_inf_where_it_means_off():
    settings = SchedulerSettings.from_sources({"pars": {"fcfs_wait_factor": "inf"}},
                                              {"PARS_SCORE_BATCH": "16", "PARS_MAX_WAIT_S": "inf"})
    assert settings.max_batch == 16 and isinstance(settings.max_batch, int)
    assert math.isinf(settings.max_wait_s) and math.isinf(settings.fcfs_wait_factor)


@pytest.mark.parametrize(
    "config, env, named",
    [
        ({"pars": {"agin_rate": 1}}, {}, "agin_rate"),
        ({"pars": ["aging_rate"]}, {}, "JSON object"),
        ({}, {"PARS_MAX_WAIT_S": "soon"}, "PARS_MAX_WAIT_S"),
        ({}, {"PARS_AGING_RATE": "-1"}, "aging_rate"),
        ({"pars": {"max_batch": 0}}, {}, "max_batch"),
        # each of these was accepted (or crashed later, inside an engine step) before validation was strict
        ({}, {"PARS_SCORE_TIMEOUT_S": "nan"}, "timeout_s"),
        ({"pars": {"budget_ms": float("inf")}}, {}, "budget_ms"),
        ({"pars": {"max_batch": 1.5}}, {}, "max_batch"),
        ({"pars": {"max_batch": True}}, {}, "max_batch"),
        ({}, {"PARS_SCORE_BATCH": "8.0"}, "max_batch"),
        ({"pars": {"aging_rate": "inf"}}, {}, "aging_rate"),
        ({"pars": {"max_wait_s": 0}}, {}, "max_wait_s"),
        ({"pars": {"max_wait_s": "-inf"}}, {}, "max_wait_s"),
        ({"pars": {"fcfs_wait_factor": 0.5}}, {}, "fcfs_wait_factor"),
        ({"pars": {"frontend_timeout_s": "nan"}}, {}, "frontend_timeout_s"),
        ({"pars": {"predictor": ""}}, {}, "predictor"),
        ({"pars": {"predictor": 3}}, {}, "predictor"),
        ({"pars": {"max_queued": 0}}, {}, "max_queued"),
    ],
)
def test_bad_settings_raise_one_error_naming_the_key_and_the_allowed_range(config, env, named):
    with pytest.raises(SettingsError) as err:
        SchedulerSettings.from_sources(config, env)
    message = str(err.value)
    assert named in message
    if "unknown" not in message and "JSON" not in message:
        assert "must be" in message
