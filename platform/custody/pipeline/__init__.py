"""The one place that runs units of work over shards and records what they did.

A check or a stage (checks/, stages/) only says what it does to a record; the pipeline runs it:
it hands shards to an executor (`executors/`: this process or a Ray cluster), keeps finished
shards so a crashed check resumes (`shard_work.py`), chains stages (`chain.py`) and ends every
job the same way (`record.py`: the summary into the store, one ledger entry naming it).
"""
