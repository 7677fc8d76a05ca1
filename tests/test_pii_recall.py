"""Opt-in recall recognizers (custody.pii.recall): what they find, and that defaults do not move."""

from __future__ import annotations

import pytest
import spacy

from custody.pii.recall import ADDRESS_ENTITY, NAME_ENTITY, RECALL_ENTITIES, StreetAddressRecognizer, recall_recognizers

ADDRESSES = [
    ("The title refers to 1668 Glyn St street in Highveld.", "1668 Glyn St"),
    ("Please validate the following? Cinzia and Hammarvägen 15", "Hammarvägen 15"),
    ("Ship it to 221 Baker Street, Apt. 4, Springfield, IL 62704 please", "221 Baker Street, Apt. 4"),
    ("Unit 8505 Box 9220 DPO AE 90744", "Unit 8505 Box 9220 DPO AE 90744"),
    ("Her shop is at Rue de Virton 38 now", "Rue de Virton 38"),
    ("The restaurant is at 5521 119 Countess Close", "5521 119 Countess Close"),
]
NOT_ADDRESSES = [
    "I have 3 cats and 42 dogs in 2020.",
    "Order 55213 shipped on 2021-03-04, total 1,250.00 USD.",
    "Call 555 0134 or 212 555 0199 after 5 pm.",
]


@pytest.fixture(scope="module")
def recognizer() -> StreetAddressRecognizer:
    return StreetAddressRecognizer()


@pytest.mark.parametrize(("text", "address"), ADDRESSES)
def test_finds_known_addresses(recognizer, text, address):
    found = [text[r.start : r.end] for r in recognizer.analyze(text, [ADDRESS_ENTITY])]
    assert any(address in span for span in found), found


@pytest.mark.parametrize("text", NOT_ADDRESSES)
def test_plain_numbers_are_not_addresses(recognizer, text):
    assert recognizer.analyze(text, [ADDRESS_ENTITY]) == []


def test_recall_recognizers_only_when_asked():
    from custody.pii.engine import DEFAULT_ENTITIES

    assert ADDRESS_ENTITY not in DEFAULT_ENTITIES
    assert recall_recognizers(DEFAULT_ENTITIES) == []
    assert recall_recognizers(None) == []
    nlp = spacy.blank("en")  # the name recognizer reads English words from the pipeline's lemmatizer
    assert [r.supported_entities for r in recall_recognizers(DEFAULT_ENTITIES + RECALL_ENTITIES, nlp)] == [
        [ADDRESS_ENTITY],
        [NAME_ENTITY],
    ]
    assert [r.supported_entities for r in recall_recognizers((NAME_ENTITY,), nlp)] == [[NAME_ENTITY]]


SAMPLE = [
    "John Smith moved to 1668 Glyn St, Springfield, IL 62704 last year; mail john@example.com.",
    "Please validate the following? Cinzia and Hammarvägen 15",
    "Card 4111 1111 1111 1111, SSN 078-05-1120, call +1-604-696-5272.",
    "@paulwalk It 's the view from where I 'm living for two weeks . Empire State Building = ESB .",
]


def test_opt_in_changes_detections_only_when_on():
    from custody.pii.engine import DEFAULT_ENTITIES
    from custody.pii.fast import FastScanner, ScannerConfig, get_scanner

    default = [list(s) for s in get_scanner(ScannerConfig()).scan(SAMPLE)]
    fresh = [list(s) for s in FastScanner(ScannerConfig()).scan(SAMPLE)]
    opt_in = [list(s) for s in FastScanner(ScannerConfig(entities=DEFAULT_ENTITIES + RECALL_ENTITIES)).scan(SAMPLE)]
    assert default == fresh  # building the opt-in analyzer leaves default scanners alone
    assert all(s.entity_type not in RECALL_ENTITIES for spans in default for s in spans)
    # Opt-in adds STREET_ADDRESS and PERSON_NAME spans and changes nothing else.
    assert [[s for s in spans if s.entity_type not in RECALL_ENTITIES] for spans in opt_in] == default
    assert sum(s.entity_type == ADDRESS_ENTITY for spans in opt_in for s in spans) >= 2
    names = {
        SAMPLE[i][s.start : s.end] for i, spans in enumerate(opt_in) for s in spans if s.entity_type == NAME_ENTITY
    }
    assert names == {"John Smith", "Cinzia"}  # "Cinzia" is in Faker's it_IT list, not in the US census


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("meet Levin , Hien and Trisha tomorrow", ["Levin", "Hien", "Trisha"]),  # a surname, two first names
        ("~HAPPY B-DAY TAYLOR !!!", ["TAYLOR"]),  # a WordNet noun, but too rare a word to stop a name
        ("~HAPPY B-DAY GRACE !!!", []),  # "grace" is a common word: alone, it is not taken
        ("ANJA RUBIK Model in Lingerie", ["ANJA RUBIK"]),  # a full name, in capitals
        ("lol was with justin bieber today", ["justin bieber"]),  # lower case: both names, neither a word
        ("i will go with grace and hope", []),  # lower-case English words are never names
        ("party with kristen and trisha", ["kristen", "trisha"]),  # lower-case first names that are no words
        ("moved to 1668 Glyn St last year", []),  # a name in a street name is the address's
        ("Will you come? May is fine. Grace under pressure.", []),  # names that are English words
        ("John F. Kennedy spoke", ["John F. Kennedy"]),  # a middle initial
        ("email @trisha or #trisha", []),  # handles and hashtags are not names here
        ("that was Trisha's idea, and O'Brien's", ["Trisha", "O'Brien"]),  # possessives
    ],
)
def test_informal_names(text, found):
    from custody.pii.engine import select_model
    from custody.pii.names import InformalNameRecognizer, name_lists

    recognizer = InformalNameRecognizer(name_lists(model=select_model()))
    assert [text[r.start : r.end] for r in recognizer.analyze(text, [NAME_ENTITY])] == found


def test_the_address_prefilter_fires_wherever_the_recognizer_matches(shared_data):
    """The fast scanner runs StreetAddressRecognizer only where its prefilter fires: on the real and
    synthetic gold sets and on SAMPLE, every text the recognizer matches must pass the prefilter."""
    from custody.pii.evaluate import load_synth, load_wnut
    from custody.pii.fast import PREFILTER

    prefilter = PREFILTER[ADDRESS_ENTITY]
    recognizer = StreetAddressRecognizer()
    texts = SAMPLE + load_synth(shared_data).texts + load_wnut(shared_data).texts
    texts += ["PSC 1234, Box 5678", "USS Enterprise, FPO AE 09012", "Augsburger Strasse 36", "C/ Mayor 3"]
    matched = [t for t in texts if recognizer.analyze(t, [ADDRESS_ENTITY])]
    assert len(matched) > 50
    assert [t for t in matched if not prefilter.search(t)] == []
    skipped = sum(not prefilter.search(t) for t in texts)
    assert skipped > len(texts) // 2  # and it spares most texts the patterns
