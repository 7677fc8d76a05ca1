"""The opt-in name recognizer's parts: name lists, English words, cues, spaCy's veto; and the
scanner's faster equivalents of presidio's token lookup and NLP artifacts."""

from __future__ import annotations

import random

import pytest
import spacy
from spacy.tokens import Span

from custody.pii.name_cues import handles, titled
from custody.pii.name_sources import all_names, census_names, faker_names, sources
from custody.pii.names import NAME_ENTITY, InformalNameRecognizer, name_lists


@pytest.fixture(scope="module")
def lists():
    from custody.pii.engine import select_model

    return name_lists(model=select_model())


def test_name_lists_add_faker_names_to_the_census():
    census_first, census_last = census_names()
    faker_first, faker_last = faker_names()
    first, last = all_names()
    assert "trisha" in census_first and "kowalski" in census_last
    for name in ("hamish", "cinzia", "fleur"):  # names the census lists lack
        assert name not in census_first and name in faker_first and name in first
    assert "josé" in faker_first and "jose" in faker_first  # accents kept, and dropped
    assert all(" " not in name for name in first | last)
    assert census_last | faker_last == last
    assert set(sources()) == {"names", "faker"}


def test_english_words_are_common_lemmas_their_forms_and_stop_words(lists):
    for word in ("will", "may", "grace", "hope", "walls", "doing", "been", "from", "than", "my"):
        assert lists.is_word(word), word
    # WordNet lists these, but they are rare as words: names ("lohan" is an arhat in WordNet)
    for name in ("lohan", "george", "lindsay", "tanner", "walker", "parker"):
        assert not lists.is_word(name), name


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Dr . Cox still hittin em", ["Dr . Cox"]),  # tokenised text
        ("fans of Lil Yachty and Mrs. Doubtfire", ["Lil Yachty", "Mrs. Doubtfire"]),
        ("I Miss You so much", []),  # a stop word after a title
        ("Paramount Dr L 8", []),  # one letter
    ],
)
def test_titled_names(lists, text, found):
    assert [text[s:e] for s, e in titled(text, lists.words.stop)] == found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("happy birthday @EmmaWillis !", ["EmmaWillis"]),
        ("RT @ realDonaldTrump only a possibly", ["realDonaldTrump"]),  # tokenised "@ handle"
        ("@sallykohn you are", ["sallykohn"]),  # lower case: first name + surname
        ("@MissMcCleary : am I", ["MissMcCleary"]),  # a title and a surname
        ("@paulwalk It 's the view", []),  # "walk" is a word
        ("@jebove 2 @KindnessOfMen @hope2259", []),  # handles that spell no name
    ],
)
def test_handles_that_spell_a_full_name(lists, text, found):
    recognizer = InformalNameRecognizer(lists)
    spans = handles(text, lists.first, lists.last, lists.words, recognizer._full)
    assert [text[s:e] for s, e in spans] == found


def test_spacy_entities_that_are_not_people_veto_a_name(lists):
    """A name in the lists too rare as a word to count as one ("Sunday"): spaCy's DATE decides."""

    class Artifacts:
        tokens = None

    recognizer = InformalNameRecognizer(lists)
    doc = spacy.blank("en")("see you Sunday with Hamish")
    assert [doc.text[r.start : r.end] for r in recognizer.analyze(doc.text, [NAME_ENTITY])] == ["Sunday", "Hamish"]
    doc.ents = [Span(doc, 2, 3, "DATE")]
    artifacts = Artifacts()
    artifacts.tokens = doc
    assert [doc.text[r.start : r.end] for r in recognizer.analyze(doc.text, [NAME_ENTITY], artifacts)] == ["Hamish"]


def test_match_token_is_presidios():
    """custody's bisection finds the same token as presidio's walk, wherever a match starts."""
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    from custody.pii.engine import _match_token

    nlp = spacy.blank("en")
    rng = random.Random(7)
    words = ["call", "555-124564", "me", "at", "+1 (604) 696-5272", ",", "card", "4111 1111", "  ", "\n", "ok."]
    for _ in range(200):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        doc = nlp(text)
        indices = [token.idx for token in doc]
        for start in range(len(text) + 1):
            try:
                expected = LemmaContextAwareEnhancer._find_index_of_match_token("w", start, doc, indices)
            except ValueError:
                with pytest.raises(ValueError):
                    _match_token("w", start, doc, indices)
                continue
            assert _match_token("w", start, doc, indices) == expected, (text, start)


def test_lazy_artifacts_hold_presidios_values():
    from custody.pii.fast import _lazy_artifacts

    nlp = spacy.blank("en")
    doc = nlp("Call Mr. Smith at 555-0134, he's home.")
    artifacts = _lazy_artifacts()([], doc, False, None, "en", [])
    assert artifacts.tokens_indices == [token.idx for token in doc]
    assert artifacts.lemmas == [token.lower_ for token in doc]
    artifacts.lemmas = ["x"]
    assert artifacts.lemmas == ["x"]
