"""Provenance reports and standard exports (issue 8).

gather.py      everything the home knows about a dataset or a run, as one plain dict of claims
claims.py      what a claim is: a dict citing a ledger entry by index (and artifacts by digest)
anchors.py     inclusion proofs of every cited entry to one fresh signed checkpoint; the seal
layout.py      the exact bytes of JSON, Markdown and HTML reports (embedding the report JSON)
fields.py      the provenance fields of docs/provenance.md, as known for one dataset
render_*.py    Markdown, HTML (inline SVG charts, svg.py) and JSON
build.py       gather, anchor, render, record `report.exported/v1`, seal
verify.py      `custody verify-report`: offline, with nothing but the ledger's verifier key
exports/       SPDX 3.0.1, CycloneDX 1.6, Hugging Face card, EU AI Act summary, OpenLineage, Croissant 1.1
               (exports/catalog.py: the exporter registry)
"""

REPORT_FORMAT = "custody.provenance-report/v1"
REPORT_FORMATS = ("md", "html", "json")


class ExportError(ValueError):
    """This format cannot describe this target (e.g. a dataset card for a run)."""
