"""Opt-outs: the reservations sites publish against AI training, and registries of people and
sites that asked to be left out.

`robots.py`, `prefs.py` and `tdmrep.py` read the published signals (RFC 9309 robots.txt for AI
crawlers, the IETF aipref `Content-Usage` field and robots.txt rule, `Content-Signal`, W3C
TDMRep); `signals.py` is the one evaluator that says which of them reserved a record, and from
which snapshot. `lists.py` reads opt-out registry files; `registry.py` records their imports in
the ledger and says which registered dataset versions they affect. See docs/optout.md.
"""
