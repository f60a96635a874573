"""The Excel settings default to no watching and the hub's own phone region, and refuse nonsense."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from crm_hub_plugins.excel.settings import ExcelSettings


def test_defaults_watch_nothing_and_defer_the_region_to_the_hub() -> None:
    settings = ExcelSettings()
    assert (settings.watch_dir, settings.default_region, settings.max_rows) == (None, None, 1_048_576)


def test_values_from_the_environment_are_coerced() -> None:
    settings = ExcelSettings.model_validate({"watch_dir": "/srv/inbox", "poll_interval": "2.5", "max_rows": "1000"})
    assert (settings.watch_dir, settings.poll_interval, settings.max_rows) == (Path("/srv/inbox"), 2.5, 1000)


@pytest.mark.parametrize("field", ["poll_interval", "max_rows"])
def test_a_zero_interval_or_limit_is_refused(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ExcelSettings.model_validate({field: 0})
