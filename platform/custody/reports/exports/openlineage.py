"""OpenLineage run events (JSON Lines, one event per line), built with openlineage-python's
classes: a run reads its datasets and writes a model; a dataset's lineage is one event per
custody stage that derived it.

The producer URI every event and facet carries is the custody distribution's project URL from
its installed metadata (pyproject.toml's `[project.urls]`, else `Home-page`); without one (a
source tree that was never installed, or no URL declared) it is the home's origin, as the SPDX
export's document namespace is."""

from __future__ import annotations

import functools
import uuid
from importlib import metadata
from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import dataset_version_dataset, documentation_job, error_message_run
from openlineage.client.serde import Serde

from custody.reports.exports import dataset_sections, root_registrations

name = "openlineage"  # its key in reports/exports/catalog.py

DISTRIBUTION = "custody"
URL_LABELS = ("repository", "source", "sourcecode", "homepage")  # preferred, as PEP 753 normalizes labels


@functools.cache
def project_url() -> str | None:
    """The custody distribution's project URL from its metadata, or None when it declares none."""
    try:
        meta = metadata.metadata(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    urls: dict[str, str] = {}
    for item in meta.get_all("Project-URL") or []:
        label, _, url = item.partition(",")
        key = "".join(c for c in label.lower() if c.isalnum())
        if url.strip():
            urls.setdefault(key, url.strip())
    preferred = [urls[label] for label in URL_LABELS if label in urls]
    return (preferred or list(urls.values()) or [meta.get("Home-page") or None])[0]


def producer(content: dict[str, Any]) -> str:
    """The producer URI OpenLineage asks for: the project's URL, else the home's origin."""
    return project_url() or f"https://{content['origin']}"


def _run_id(origin: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://{origin}/{name}"))


def _dataset(cls: type, namespace: str, ref: str, digest: str, by: str) -> Any:
    facet = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=f"sha256:{digest}", producer=by)
    return cls(namespace=namespace, name=ref, facets={"version": facet})


def _run_events(content: dict[str, Any]) -> list[RunEvent]:
    namespace = f"custody://{content['origin']}"
    by = producer(content)
    started, finished = content["run"]["started"], content["run"]["finished"]
    run = Run(runId=_run_id(content["origin"], content["subject"]))
    job = Job(
        namespace=namespace,
        name=started["name"],
        facets={
            "documentation": documentation_job.DocumentationJobFacet(
                description=f"custody {started['kind']} run; spec sha256 {started['spec_digest']}", producer=by
            )
        },
    )
    inputs = [_dataset(InputDataset, namespace, d["ref"], d["digest"], by) for d in started["datasets"]]
    events = [RunEvent(eventType=RunState.START, eventTime=started["ts"], run=run, job=job, producer=by, inputs=inputs)]
    if finished:
        state = RunState.COMPLETE if finished["status"] == "completed" else RunState.FAIL
        outputs = []
        if finished.get("model_digest"):
            model = f"model:{content['target']}"
            outputs.append(_dataset(OutputDataset, namespace, model, finished["model_digest"], by))
        facets = {}
        if finished.get("error"):
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=finished["error"], programmingLanguage="python", producer=by
            )
        events.append(
            RunEvent(
                eventType=state,
                eventTime=finished["ts"],
                run=Run(runId=run.runId, facets=facets),
                job=job,
                producer=by,
                inputs=inputs,
                outputs=outputs,
            )
        )
    return events


def _lineage_events(content: dict[str, Any]) -> list[RunEvent]:
    namespace = f"custody://{content['origin']}"
    by = producer(content)
    events = []
    for reg in reversed(root_registrations(dataset_sections(content)[0])):
        ref = f"{reg['name']}@{reg['version']}"
        job = Job(namespace=namespace, name=(reg.get("stage") or {}).get("name", "dataset.register"))
        run = Run(runId=_run_id(content["origin"], f"ledger/{reg['ledger_index']}"))
        inputs = [_dataset(InputDataset, namespace, p["dataset"], p["digest"], by) for p in reg.get("parents", [])]
        outputs = [_dataset(OutputDataset, namespace, ref, reg["manifest_digest"], by)]
        events.append(
            RunEvent(
                eventType=RunState.COMPLETE,
                eventTime=reg["ts"],
                run=run,
                job=job,
                producer=by,
                inputs=inputs,
                outputs=outputs,
            )
        )
    return events


def export(content: dict[str, Any]) -> bytes:
    events = _run_events(content) if content["kind"] == "run" else _lineage_events(content)
    return "".join(Serde.to_json(event) + "\n" for event in events).encode()
