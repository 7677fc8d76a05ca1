"""custody inside other people's training frameworks.

- `custody.integrations.hf.CustodyCallback`: a `transformers.Trainer` callback that refuses to start
  training without the run's allow decision and records metrics and checkpoints through a
  `custody.governed_run` (docs/api.md).

Each integration imports its framework itself, so `import custody.integrations` needs none of them.
"""
