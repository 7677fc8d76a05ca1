"""Datasets: registration with manifests and provenance cards, reading, and lineage."""
