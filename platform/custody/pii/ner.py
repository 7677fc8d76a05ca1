"""spaCy's pipeline over a batch of texts, with its transition-based components (NER, the parser)
stepped with the GIL held: the same computation as `nlp.pipe`, same entities, about twice as fast.

Why. spaCy's greedy decoder (`Parser.greedy_parse`) releases the GIL and runs its loop in C,
calling small Cython functions for every state at every step (score the state, check each action,
take the best). `perf` on that loop put about a third of its samples in `take_gil`, `drop_gil`,
`PyGILState_*` and the pthread mutexes behind them, and `greedy_parse` took about 2.4 times as
long as the same steps driven from Python with the GIL held (docs/benchmarks.md#pii has the
profile). The likely cause: spaCy's extension modules are compiled with Cython's profiling
hooks on Python before 3.12 (`"profile": sys.version_info < (3, 12)` in its setup.py; cProfile
lists its Cython functions), and a profiled Cython function running without the GIL takes the
GIL to ask whether a profiler is active; with the GIL held that costs next to nothing.

How. spaCy's own step-wise API, the one its beam search and training use: the step model from
`parser.model.predict(docs)` scores the unfinished states (`predict(states)`: the same
`sum_state_features` over the same precomputed features, the same maxout, the same BLAS gemm
for the output layer, unseen classes set to the minimum), and `parser.transition_states` takes
the best valid action for each (the same C routine `greedy_parse` calls). Batches are cut and
sorted by length exactly as `Parser.pipe` cuts them, so every float is computed the same way and
the entities are the same (tested against `nlp.pipe`, also at other batch sizes: a document's
entities do not depend on its batch; bench/pii_profile.py compares them on all 3,595 documents
of the shared PII sets). Components that are not transition-based (tok2vec, senter, ...) run
through their own `pipe`; a parser configured for beam search falls back to its own `predict`.
"""

from __future__ import annotations

from collections.abc import Iterator


def greedy_parse(parser, docs: list) -> list:
    """What `parser.predict(docs)` returns for a greedy parser (beam width 1), stepped with the GIL held."""
    if not any(len(doc) for doc in docs) or parser.cfg.get("beam_width", 1) != 1:
        return parser.predict(docs)
    parser._ensure_labels_are_added(docs)
    batch = parser.moves.init_batch(docs)
    model = parser.model.predict(docs)
    states = [state for state in batch if not state.is_final()]
    while states:
        states = parser.transition_states(states, model.predict(states))
    model.clear_memory()
    return batch


def _is_transition_parser(proc) -> bool:
    from spacy.pipeline.transition_parser import Parser

    return isinstance(proc, Parser)


def parser_pipe(parser, docs: list, batch_size: int) -> Iterator:
    """`Parser.pipe` (minus its error handler), with `greedy_parse` for `parser.predict`."""
    from spacy.util import minibatch

    for batch in minibatch(docs, size=batch_size):
        batch_in_order = list(batch)
        by_length = sorted(batch_in_order, key=len)
        for sub in minibatch(by_length, size=max(batch_size // 4, 2)):
            sub = list(sub)
            parser.set_annotations(sub, greedy_parse(parser, sub))
        yield from batch_in_order


def pipe(nlp, texts: list[str], components: list[str], batch_size: int) -> list:
    """`list(nlp.pipe(texts, batch_size=batch_size))` with only `components` run (in pipeline order)."""
    docs = [nlp.make_doc(text) for text in texts]
    for name, proc in nlp.pipeline:
        if name not in components:
            continue
        if _is_transition_parser(proc):
            docs = list(parser_pipe(proc, docs, batch_size))
        elif hasattr(proc, "pipe"):
            docs = list(proc.pipe(docs, batch_size=batch_size))
        else:
            docs = [proc(doc) for doc in docs]
    return docs
