"""Policies and the gate: declarative rules, recorded decisions, human reviews and waivers.

schema.py       the policy file (TOML): validated models, errors naming the key and line
rules.py        what each rule checks, one function per stable rule id
evaluate.py     policy + input document -> decision (pure; replay runs it again)
inputs.py       gathering the input document from a home (datasets, check results, reviews)
reviews.py      approve / reject / waive: ledger entries, expiry, separation of duties
entry_types.py  `policy.decision/v1` and `review.recorded/v1`
gate.py         evaluate, record `policy.decision/v1`, fail closed
replay.py       re-evaluate a recorded decision from the digests it names
refs.py         which policies a recorded decision used, in words (dashboards and reports)
"""
