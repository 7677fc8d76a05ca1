"""Evaluating models on registered, annotated datasets (`custody eval`), recorded in the ledger."""
