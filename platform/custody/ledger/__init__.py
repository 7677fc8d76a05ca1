"""The tamper-evident audit ledger (RFC 9162 Merkle log with signed checkpoints)."""
