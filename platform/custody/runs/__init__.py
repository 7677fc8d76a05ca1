"""Policy-gated training runs: specs, the governed run, and its ledger entries."""
