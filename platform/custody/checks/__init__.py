"""Checks: each reads a dataset's records and writes one row per record plus a summary."""
