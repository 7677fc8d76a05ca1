"""Read models for the dashboards: plain Python over a home, with paged queries.

Each module answers one page's questions (overview, datasets, reviews, runs, ledger,
policies) without Streamlit, so it is unit-tested directly and reused by the benchmark. No
function here loads the whole ledger: reads go through custody.ledger.query's type- and
subject-indexed pages, newest first where a page shows the latest items.

Shared by the pages: `identity` (the dashboard's attestor key and the signed-in person's
standing on the roster) and `signatures` (who signed an entry, in words); which policies a
decision used, by digest and binding, is custody.policy.refs (the reports say it too). Helpers
of one page: `license_mix` (records per license, the card's included), `footprint` and
`equivalents` (a run's energy, carbon and water in fitting units, with everyday comparisons
where they mean something).
"""
