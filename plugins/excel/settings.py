"""The Excel plugin's settings: ``HUB_EXCEL__<FIELD>`` or the ``[excel]`` table of the TOML file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class ExcelSettings(BaseModel):
    """Where files to import appear, how often to look, and the limits of what is read."""

    watch_dir: Path | None = Field(
        default=None, description="Folder watched for new .xlsx/.xls/.ods/.csv files to import; none: no watching."
    )
    poll_interval: float = Field(default=5.0, gt=0, description="Seconds between two looks at watch_dir.")
    default_region: str | None = Field(
        default=None, description="Region for phone numbers without a country code; none: the hub's HUB_DEFAULT_REGION."
    )
    max_rows: int = Field(
        default=1_048_576, ge=1, description="Sheets with more rows are refused with a message instead of being read."
    )
