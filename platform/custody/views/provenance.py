"""A dataset's provenance report for the dashboard's download: the verifiable JSON report of
`custody report NAME@VERSION --format json` (see custody.reports), recorded in the ledger like
any report that leaves the building."""

from __future__ import annotations

from pathlib import Path

from custody.home import Home
from custody.reports import REPORT_FORMAT
from custody.views.datasets import DatasetDetail

FORMAT = REPORT_FORMAT


def provenance_json(home: Home, detail: DatasetDetail) -> bytes:
    from custody.reports.build import build_report

    return build_report(home, str(detail.dataset.ref), "json").data


def provenance_download(home_path: Path, ref: str) -> bytes:
    """For a deferred download: runs on Streamlit's own thread, so it opens its own home."""
    from custody.reports.build import build_report

    home = Home.open(home_path)
    try:
        return build_report(home, ref, "json").data
    finally:
        home.close()
