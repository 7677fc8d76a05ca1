"""OpenLineage run events (JSON Lines, one event per line), built with openlineage-python's
classes: a run reads its datasets and writes a model; a dataset's lineage is one event per
custody stage that derived it."""

from __future__ import annotations

import uuid
from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import dataset_version_dataset, documentation_job, error_message_run
from openlineage.client.serde import Serde

from custody.reports.exports import dataset_sections, root_registrations

PRODUCER = "https://github.com/custody/custody"  # the producer URI OpenLineage asks for


def _run_id(origin: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://{origin}/{name}"))


def _dataset(cls: type, namespace: str, ref: str, digest: str) -> Any:
    facet = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=f"sha256:{digest}", producer=PRODUCER)
    return cls(namespace=namespace, name=ref, facets={"version": facet})


def _run_events(content: dict[str, Any]) -> list[RunEvent]:
    namespace = f"custody://{content['origin']}"
    started, finished = content["run"]["started"], content["run"]["finished"]
    run = Run(runId=_run_id(content["origin"], content["subject"]))
    job = Job(
        namespace=namespace,
        name=started["name"],
        facets={
            "documentation": documentation_job.DocumentationJobFacet(
                description=f"custody {started['kind']} run; spec sha256 {started['spec_digest']}", producer=PRODUCER
            )
        },
    )
    inputs = [_dataset(InputDataset, namespace, d["ref"], d["digest"]) for d in started["datasets"]]
    events = [
        RunEvent(eventType=RunState.START, eventTime=started["ts"], run=run, job=job, producer=PRODUCER, inputs=inputs)
    ]
    if finished:
        state = RunState.COMPLETE if finished["status"] == "completed" else RunState.FAIL
        outputs = []
        if finished.get("model_digest"):
            outputs.append(_dataset(OutputDataset, namespace, f"model:{content['target']}", finished["model_digest"]))
        facets = {}
        if finished.get("error"):
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=finished["error"], programmingLanguage="python", producer=PRODUCER
            )
        events.append(
            RunEvent(
                eventType=state,
                eventTime=finished["ts"],
                run=Run(runId=run.runId, facets=facets),
                job=job,
                producer=PRODUCER,
                inputs=inputs,
                outputs=outputs,
            )
        )
    return events


def _lineage_events(content: dict[str, Any]) -> list[RunEvent]:
    namespace = f"custody://{content['origin']}"
    events = []
    for reg in reversed(root_registrations(dataset_sections(content)[0])):
        ref = f"{reg['name']}@{reg['version']}"
        job = Job(namespace=namespace, name=(reg.get("stage") or {}).get("name", "dataset.register"))
        run = Run(runId=_run_id(content["origin"], f"ledger/{reg['ledger_index']}"))
        inputs = [_dataset(InputDataset, namespace, p["dataset"], p["digest"]) for p in reg.get("parents", [])]
        outputs = [_dataset(OutputDataset, namespace, ref, reg["manifest_digest"])]
        events.append(
            RunEvent(
                eventType=RunState.COMPLETE,
                eventTime=reg["ts"],
                run=run,
                job=job,
                producer=PRODUCER,
                inputs=inputs,
                outputs=outputs,
            )
        )
    return events


def export(content: dict[str, Any]) -> bytes:
    events = _run_events(content) if content["kind"] == "run" else _lineage_events(content)
    return "".join(Serde.to_json(event) + "\n" for event in events).encode()
