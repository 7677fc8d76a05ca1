"""The reservation evaluator, signal by signal, on files and fields written as sites publish them.

robots.txt by RFC 9309 (groups, product tokens, longest match, Allow wins a tie, `*` and `$`,
percent-encoding), Content-Usage by draft-ietf-aipref-attach and -vocab (RFC 9651 dictionaries,
the header and the robots.txt rule), TDMRep (the well-known file, headers and meta, nearest
wins), Content-Signal; and the evaluator naming the signal and the snapshot that reserved a record.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from custody.optout import prefs, tdmrep
from custody.optout.robots import RobotsTxt, normalize_path, url_path
from custody.optout.signals import DEFAULT_AGENTS, Evaluator, Snapshot, field_values, url_host

# The example of RFC 9309, section 5.1, with the comments it carries.
RFC_EXAMPLE = """\
User-Agent: *
Disallow: *.gif$
Disallow: /example/
Allow: /publications/

User-Agent: foobot
Disallow:/
Allow:/example/page.html
Allow:/example/allowed.gif

User-Agent: barbot
User-Agent: bazbot
Disallow: /example/page.html

User-Agent: quxbot

EOF
"""

# A news site's robots.txt of 2024-2025: search crawlers in, AI training crawlers out.
NEWS_ROBOTS = """\
# robots.txt for news.example
User-agent: Googlebot
Allow: /

User-agent: GPTBot
User-agent: CCBot
Disallow: /

User-agent: Google-Extended
Disallow: /archive/

User-agent: *
Allow: /
Disallow: /private/
Content-Usage: / train-ai=n
Content-Usage: /open-data/ train-ai=y
Content-Signal: search=yes, ai-train=no

Sitemap: https://news.example/sitemap.xml
"""


def access(robots: RobotsTxt, agent: str, path: str) -> bool:
    rule = robots.access(agent, normalize_path(path))
    return rule is None or rule.label == "allow"


# -- robots.txt (RFC 9309) -----------------------------------------------------------------


def test_rfc_9309_example_groups_and_rules():
    robots = RobotsTxt.parse(RFC_EXAMPLE)
    assert [g.agents for g in robots.groups] == [["*"], ["foobot"], ["barbot", "bazbot"], ["quxbot"]]
    # foobot: everything disallowed but two files
    assert not access(robots, "foobot", "/")
    assert access(robots, "foobot", "/example/page.html") and access(robots, "FooBot", "/example/allowed.gif")
    # barbot and bazbot share a group; quxbot's group is empty: everything allowed
    assert not access(robots, "bazbot", "/example/page.html") and access(robots, "bazbot", "/example/")
    assert access(robots, "quxbot", "/example/")
    # any other crawler takes the * group: *.gif$ and /example/ are out, /publications/ in
    assert not access(robots, "otherbot", "/images/logo.gif") and access(robots, "otherbot", "/images/logo.gif?x=1")
    assert not access(robots, "otherbot", "/example/x") and access(robots, "otherbot", "/publications/a")


def test_longest_match_wins_and_allow_wins_a_tie():
    robots = RobotsTxt.parse("User-agent: *\nDisallow: /a\nAllow: /a/b\nDisallow: /a/b/c\nAllow: /t\nDisallow: /t\n")
    assert not access(robots, "x", "/a") and access(robots, "x", "/a/b/x") and not access(robots, "x", "/a/b/c/d")
    assert access(robots, "x", "/t")  # equivalent allow and disallow: the allow


def test_groups_for_one_token_are_merged_and_star_only_when_none_names_it():
    robots = RobotsTxt.parse(
        "User-agent: GPTBot\nDisallow: /a\n\nUser-agent: *\nDisallow: /\n\nuser-agent: gptbot\nDisallow: /b\n"
    )
    assert not access(robots, "GPTBot", "/a") and not access(robots, "GPTBot", "/b") and access(robots, "GPTBot", "/c")
    assert not access(robots, "CCBot", "/c")
    assert access(RobotsTxt.parse("User-agent: GPTBot\nDisallow: /\n"), "CCBot", "/")  # no * group: allowed


def test_wildcards_anchors_and_percent_encoding():
    robots = RobotsTxt.parse(
        "User-agent: *\nDisallow: /*/edit$\nDisallow: /caf%C3%A9/\nDisallow: /%7Euser/\nDisallow: /file-%24\n"
    )
    assert not access(robots, "x", "/wiki/edit") and access(robots, "x", "/wiki/edit/more")
    assert not access(robots, "x", "/café/menu")  # non-ASCII is compared percent-encoded
    assert not access(robots, "x", "/~user/page")  # %7E is the unreserved ~
    assert url_path("https://e.example/file-$") == "/file-%24" and not access(robots, "x", "/file-%24")
    assert url_path("https://e.example") == "/" and url_path("https://e.example/a b?q=1") == "/a%20b?q=1"


def test_lines_outside_groups_comments_and_junk_are_tolerated():
    robots = RobotsTxt.parse(
        b"\xef\xbb\xbfDisallow: /ignored\nnot a rule\nUser-agent: *   # all\nDisallow: /x # comment\n\xff\n"
    )
    assert access(robots, "x", "/ignored") and not access(robots, "x", "/x/y")


# -- Content-Usage (IETF aipref) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("train-ai=n", {"train-ai": "n"}),
        ("train-ai=y, search=n", {"train-ai": "y", "search": "n"}),
        ('train-ai=n;note="kept", ai-use=y', {"train-ai": "n", "ai-use": "y"}),
        # the vocabulary's own examples: duplicates keep the last value, which is not a token here
        ('train-ai=y, train-ai, search=n, search="n"', {}),
        ("train-ai;allow=n, train-ai=y", {"train-ai": "y"}),
        ('train-ai;has;parameters="?";', {}),
        ("Train-AI=n", {}),  # keys are lower case: the whole field fails to parse
        ("train-ai=n,", {}),  # a trailing comma fails too
        ("train-ai=no", {}),  # a token other than y or n: unknown
        ("train-ai=(n y), bots=?0, x=:aGk=:, d=@1700000000, n=-1.5, train-genai=n", {"train-genai": "n"}),
    ],
)
def test_content_usage_values_parse_as_rfc_9651_dictionaries(value, expected):
    assert prefs.usage_preferences(value) == expected


def test_which_statements_reserve_training():
    reserves = lambda v: prefs.reserves_training(prefs.usage_preferences(v))  # noqa: E731
    assert reserves("train-ai=n") == "train-ai=n"
    assert reserves("train-ai=y") is None and reserves("search=n") is None and reserves("") is None
    # the early drafts' nesting: train-genai in train-ai in bots, the most specific stated one
    assert reserves("bots=n") == "bots=n" and reserves("bots=n, train-ai=y") is None
    assert reserves("train-ai=y, train-genai=n") == "train-genai=n"
    assert reserves("train-ai=n, train-genai=y") == "train-ai=n"  # the current vocabulary's train-ai


def test_robots_content_usage_rules_by_path_as_the_attach_draft_tabulates():
    robots = RobotsTxt.parse(
        "User-Agent: *\nAllow: /\nDisallow: /never/\nContent-Usage: / train-ai=n\nContent-Usage: /ai-ok/ train-ai=y\n\n"
        "User-Agent: ExampleBot\nAllow: /\nContent-Usage: / train-ai=y\n"
    )
    usage = lambda agent, path: [r.value for r in robots.usage(agent, normalize_path(path), "content-usage")]  # noqa: E731
    assert usage("other", "/test") == ["train-ai=n"] and usage("other", "/ai-ok/test") == ["train-ai=y"]
    assert usage("ExampleBot", "/test") == ["train-ai=y"]
    assert not access(robots, "other", "/never/test")
    # the early form without a path covers the whole site
    assert [r.pattern for r in RobotsTxt.parse("User-agent: *\nContent-Usage: train-ai=n\n").groups[0].rules] == ["/"]


# -- TDMRep ---------------------------------------------------------------------------------------

TDMREP_FILE = json.dumps(
    [
        {"location": "/open/*", "tdm-reservation": 0},
        {"location": "/news/*", "tdm-reservation": 1, "tdm-policy": "https://news.example/tdm-policy.json"},
        {"location": "/", "tdm-reservation": 1},
    ]
)


def test_tdmrep_file_first_matching_rule_applies():
    rules = tdmrep.parse_file(TDMREP_FILE)
    decided = lambda path: tdmrep.from_file(rules, normalize_path(path))  # noqa: E731
    assert decided("/open/data.csv").reservation == 0
    news = decided("/news/2025/story")
    assert (news.reservation, news.policy) == (1, "https://news.example/tdm-policy.json")
    assert "rule 2" in news.where and decided("/about").reservation == 1
    assert tdmrep.from_file(tdmrep.parse_file('[{"location": "/x", "tdm-reservation": 7}]'), "/x").reservation is None
    with pytest.raises(ValueError, match="array"):
        tdmrep.parse_file('{"location": "/"}')
    with pytest.raises(ValueError, match="rule 1 has no 'location'"):
        tdmrep.parse_file('[{"tdm-reservation": 1}]')


def test_tdmrep_nearest_declaration_wins():
    file_said = tdmrep.from_file(tdmrep.parse_file(TDMREP_FILE), "/about")
    header = tdmrep.from_fields({"tdm-reservation": ["0"]}, "header")
    meta = tdmrep.from_fields({"tdm-reservation": ["1"], "tdm-policy": ["https://p.example/"]}, "html meta")
    assert tdmrep.decide(None, header, file_said) is header  # the page's header lifts the site's reservation
    assert tdmrep.decide(meta, header, file_said) is meta
    assert tdmrep.decide(tdmrep.from_fields({"tdm-policy": ["https://p/"]}, "html meta"), None, file_said) is file_said
    assert tdmrep.decide(None, None, None) is None


# -- Content-Signal -------------------------------------------------------------------------------


def test_content_signal_values():
    assert prefs.content_signals("search=yes, ai-train=no") == {"search": "yes", "ai-train": "no"}
    assert prefs.content_signals("search=yes,ai-input=no,ai-train=NO") == {
        "search": "yes",
        "ai-input": "no",
        "ai-train": "no",
    }
    assert prefs.signal_reserves_training(prefs.content_signals("ai-train=no")) == "ai-train=no"
    assert prefs.signal_reserves_training(prefs.content_signals("ai-input=no, ai-train=yes")) is None
    assert prefs.content_signals("ai-train=maybe") == {}


# -- the evaluator ---------------------------------------------------------------------------------


def snapshot(host: str, kind: str, text: str, dataset: str = "web@1") -> Snapshot:
    data = text.encode()
    return Snapshot(f"reservations/{host}/{kind}", hashlib.sha256(data).hexdigest(), data, dataset)


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator(
        [
            snapshot("news.example", "robots.txt", NEWS_ROBOTS),
            snapshot("news.example", "tdmrep.json", TDMREP_FILE),
            snapshot("blog.example", "robots.txt", "User-agent: *\nAllow: /\n"),
        ]
    )


def test_robots_disallow_for_ai_crawlers_names_the_rule_agents_and_snapshot(evaluator):
    found = evaluator.evaluate("https://news.example/2025/story.html")
    robots = [r for r in found if r.signal == "robots.txt"]
    assert len(robots) == 1
    (r,) = robots
    assert (r.via, r.snapshot) == ("robots.txt", "reservations/news.example/robots.txt")
    assert r.digest == hashlib.sha256(NEWS_ROBOTS.encode()).hexdigest()
    assert r.rule == "Disallow: / (line 7) for GPTBot, CCBot"
    # Google-Extended is kept out of /archive/ by its own group
    archive = [r.rule for r in evaluator.evaluate("https://news.example/archive/1999") if r.signal == "robots.txt"]
    assert any("Google-Extended" in rule for rule in archive)


def test_usage_rules_apply_to_crawlers_that_may_fetch(evaluator):
    found = {r.signal: r for r in evaluator.evaluate("https://news.example/2025/story.html")}
    assert set(found) == {"robots.txt", "content-usage", "tdmrep", "content-signal"}
    assert found["content-usage"].rule.startswith("Content-Usage: / train-ai=n (line 15) for ClaudeBot")
    # GPTBot may not fetch: no preference applies to it; Google-Extended's own group states none
    assert "GPTBot" not in found["content-usage"].rule and "Google-Extended" not in found["content-usage"].rule
    assert found["content-signal"].rule.startswith("Content-Signal: / search=yes, ai-train=no (line 17)")
    assert found["tdmrep"].via == "tdmrep.json" and found["tdmrep"].snapshot == "reservations/news.example/tdmrep.json"
    # /open-data/ says train-ai=y; the site's tdmrep.json and Content-Signal still reserve it
    signals = {r.signal for r in evaluator.evaluate("https://news.example/open-data/x.csv")}
    assert "content-usage" not in signals and {"tdmrep", "content-signal"} <= signals


def test_record_fields_and_unknown_sites(evaluator):
    assert evaluator.evaluate("https://blog.example/post") == []
    assert evaluator.evaluate("https://elsewhere.example/") == [] and evaluator.evaluate(None) == []
    headers = field_values({"Content-Usage": "train-ai=n", "TDM-Reservation": "1", "Content-Signal": "ai-train=no"})
    found = evaluator.evaluate("https://blog.example/post", headers, None, ("part-0.jsonl", "ab" * 32))
    assert [(r.signal, r.via, r.snapshot) for r in found] == [
        ("content-usage", "header", "part-0.jsonl"),
        ("tdmrep", "header", "part-0.jsonl"),
        ("content-signal", "header", "part-0.jsonl"),
    ]
    # a page's own tdm-reservation 0 lifts the site file's reservation (TDMRep: nearest wins)
    lifted = evaluator.evaluate("https://news.example/about", {}, {"tdm-reservation": ["0"]})
    assert "tdmrep" not in {r.signal for r in lifted}
    meta = evaluator.evaluate("https://blog.example/p", {}, field_values([{"name": "tdm-reservation", "content": "1"}]))
    assert [(r.signal, r.via) for r in meta] == [("tdmrep", "html-meta")]


def test_agents_are_a_setting():
    only = Evaluator([snapshot("news.example", "robots.txt", NEWS_ROBOTS)], agents=("Googlebot",))
    assert only.evaluate("https://news.example/x") == []
    assert "GPTBot" in DEFAULT_AGENTS and "ClaudeBot" in DEFAULT_AGENTS and "Google-Extended" in DEFAULT_AGENTS


def test_hosts_and_ports_choose_the_snapshot():
    ported = Evaluator([snapshot("shop.example:8080", "robots.txt", "User-agent: *\nDisallow: /\n")])
    assert ported.evaluate("http://shop.example:8080/a") and not ported.evaluate("http://shop.example/a")
    assert url_host("https://News.Example:443/x") == "news.example" and url_host("not a url") is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, {}),
        ({"Content-Usage": ["train-ai=n", "search=y"]}, {"content-usage": ["train-ai=n", "search=y"]}),
        ([["TDM-Reservation", "1"]], {"tdm-reservation": ["1"]}),
        ("HTTP/1.1 200 OK\r\nContent-Usage: train-ai=n\r\nX: y\r\n", {"content-usage": ["train-ai=n"], "x": ["y"]}),
        ('{"tdm-reservation": 1}', {"tdm-reservation": ["1"]}),
        ([{"name": "tdm-policy", "content": "https://p.example/"}], {"tdm-policy": ["https://p.example/"]}),
        (42, None),
        ({"x": {"nested": 1}}, None),
        ("[not json", None),
    ],
)
def test_field_values_read_the_forms_crawls_keep(given, expected):
    assert field_values(given) == expected
