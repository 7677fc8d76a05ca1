"""A dataset's provenance report for the dashboard's download: the verifiable JSON report of
`custody report NAME@VERSION --format json` (see custody.reports), recorded in the ledger like
any report that leaves the building, naming the signed-in person who took it."""

from __future__ import annotations

from pathlib import Path

from custody.home import Home
from custody.reports import REPORT_FORMAT
from custody.trust.acting import Acting
from custody.views.datasets import DatasetDetail

FORMAT = REPORT_FORMAT


def provenance_json(home: Home, detail: DatasetDetail, actor: Acting | str | None = None) -> bytes:
    from custody.reports.build import build_report

    return build_report(home, str(detail.dataset.ref), "json", actor).data


def provenance_download(home_path: Path, ref: str, actor: Acting | str | None = None) -> bytes:
    """For a deferred download: runs on Streamlit's own thread, so it opens its own home."""
    from custody.reports.build import build_report

    home = Home.open(home_path)
    try:
        return build_report(home, ref, "json", actor).data
    finally:
        home.close()


EXPORT_DOWNLOADS = {"croissant": ("Croissant 1.1 JSON-LD, with the Responsible-AI fields", "application/ld+json")}


def export_download(home_path: Path, ref: str, fmt: str, actor: Acting | str | None = None) -> bytes:
    """A standard export (`custody report NAME@VERSION --format FMT`) for a deferred download, its
    digest recorded in the ledger like any export, naming who took it. Opens its own home."""
    from custody.reports.build import build_export

    home = Home.open(home_path)
    try:
        return build_export(home, ref, fmt, actor).data
    finally:
        home.close()
