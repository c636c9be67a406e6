"""SchedulerSettings: precedence of additional_config over environment, and clear errors."""

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


@pytest.mark.parametrize(
    "config, env",
    [
        ({"pars": {"agin_rate": 1}}, {}),
        ({}, {"PARS_MAX_WAIT_S": "soon"}),
        ({}, {"PARS_AGING_RATE": "-1"}),
        ({"pars": {"max_batch": 0}}, {}),
    ],
)
def test_bad_settings_raise_a_settings_error(config, env):
    with pytest.raises(SettingsError):
        SchedulerSettings.from_sources(config, env)
