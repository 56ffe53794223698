"""Custom topics in feeds.yaml: the same power as the built-in ones, and clear errors (file:line: key)."""

from __future__ import annotations

import pytest

from monitor.config import ConfigError, default_topics, parse_feeds_config
from monitor.stages.topics import TopicTagger

ARCTIC = """\
feeds: [{url: 'https://a.example/rss', topics_hint: [arctic-security]}]
topics:
  arctic-security:
    label: Arctic security
    include_terms: [Arctic, Greenland, Svalbard]
    include_phrases: [High North]
    ignore_phrases: [Arctic Monkeys]
    lead_words: 40
    lead_weight: 2
    lead_required: true
    min_density: 0.5
    signals:
      - name: military words near the Arctic
        terms: [navy, patrol, submarine*, base, icebreaker*]
        near: [Arctic, Greenland, Svalbard, High North]
        window: 8
        weight: 1.5
        max_count: 6
      - name: tourism
        terms: [cruise, hotel, tourists]
        weight: -2
    require_any:
      - name: security context
        terms: [navy, military, defence, defense, patrol, NATO]
        min_count: 2
    exclude_phrases: [Arctic char]
    min_score: 6
  nato: false
"""


def _tagger(text: str = ARCTIC) -> TopicTagger:
    return TopicTagger(parse_feeds_config(text, "f.yaml").topics)


def test_custom_topic_uses_every_rule_feature():
    cfg = parse_feeds_config(ARCTIC, "f.yaml")
    assert [r.name for r in cfg.topics] == ["ukraine-aid", "trump-foreign-policy", "arctic-security"]
    tagger = TopicTagger(cfg.topics)
    title = "Navies step up Arctic patrols"
    text = "Denmark's navy will patrol Greenland waters with two new icebreakers, the defence ministry said."
    (m,) = [m for m in tagger.explain(title, text) if m.name == "arctic-security"]
    assert m.assigned, m.reason()
    assert any(g.name == "military words near the Arctic" and g.points > 0 for g in m.signals)
    assert m.to_dict()["groups"][0]["name"] == "security context"
    # The band, tourism and the fish are not Arctic security.
    assert "arctic-security" not in tagger.tag("Arctic Monkeys tour", "The Arctic Monkeys navy patrol gig, military precision.")
    assert "arctic-security" not in tagger.tag("Arctic char recipes", "Arctic navy patrol military cooks love Arctic char.")
    touring = tagger.explain("Arctic cruise season opens", "Greenland cruise ships bring tourists; the navy patrol and military base watch.")
    assert not [m for m in touring if m.name == "arctic-security"][0].assigned


def test_custom_topic_with_a_builtin_name_replaces_it():
    text = "feeds: [https://a.example/rss]\ntopics:\n  nato:\n    label: My NATO\n    include_terms: [NATO]\n    min_score: 1\n"
    rules = parse_feeds_config(text, "f.yaml").topics
    assert [r.name for r in rules] == ["nato", "ukraine-aid", "trump-foreign-policy"]
    assert rules[0].label == "My NATO" and rules[0] != default_topics()[0]


@pytest.mark.parametrize(
    "rule,line,fragment",
    [
        ("    include_terms: [Arctic]\n    signals:\n      - {terms: [navy], near: [Arctic]}\n", 6,
         "topics.arctic.signals[0].window: missing; 'near' needs a window"),
        ("    include_terms: [Arctic]\n    require_any:\n      - {terms: [navy], window: 5}\n", 6,
         "topics.arctic.require_any[0].window: only meaningful with 'near'"),
        ("    include_terms: [Arctic]\n    signals:\n      - {terms: [navy], weight: heavy}\n", 6,
         "topics.arctic.signals[0].weight: expected a number, got str 'heavy'"),
        ("    include_terms: [Arctic]\n    signals:\n      - [navy, patrol]\n", 6,
         "topics.arctic.signals[0]: a signal is a mapping"),
        ("    include_terms: [Arctic]\n    signals:\n      - {terms: [navy], wieght: 2}\n", 6,
         "topics.arctic.signals[0].wieght: unknown key; did you mean 'weight'?"),
        ("    include_terms: ['Arc(tic|ic)']\n", 4, "topics.arctic.include_terms[0]: 'Arc(tic|ic)' is not a plain word"),
        ("    include_terms: [Arctic]\n    lead_required: true\n", 5, "topics.arctic.lead_required: needs lead_words"),
        ("    include_terms: [Arctic]\n    min_density: 500\n", 5, "topics.arctic.min_density: must be between 0 and 100"),
        ("    include_terms: [Arctic]\n    min_score: -1\n", 5, "topics.arctic.min_score: must be between"),
        ("    label: Arctic\n", 4, "topics.arctic: needs at least one of include_terms / include_phrases"),
        ("    include_terms: [Arctic]\n    ignore_phrases: [[nested]]\n", 5, "topics.arctic.ignore_phrases[0]: expected a single value"),
        ("    include_terms: [Arctic]\n    lead_words: many\n", 5, "topics.arctic.lead_words: expected a whole number"),
    ],
)
def test_bad_custom_topic_gives_file_line_and_key(rule, line, fragment):
    text = "feeds: [https://a.example/rss]\ntopics:\n  arctic:\n" + rule
    with pytest.raises(ConfigError) as err:
        parse_feeds_config(text, "feeds.yaml")
    msg = str(err.value)
    assert msg.startswith(f"feeds.yaml:{line}:"), msg
    assert fragment in msg, msg
    assert "\n" not in msg


def test_a_topic_value_that_is_not_a_rule():
    with pytest.raises(ConfigError, match=r"^f\.yaml:3: topics\.arctic: expected a topic rule"):
        parse_feeds_config("feeds: [https://a.example/rss]\ntopics:\n  arctic: yes please\n", "f.yaml")


def test_feed_hint_may_name_a_custom_topic_but_not_a_disabled_one():
    cfg = parse_feeds_config(ARCTIC, "f.yaml")
    assert cfg.feeds[0].topics_hint == ["arctic-security"]
    with pytest.raises(ConfigError, match="unknown topic 'nato'"):
        parse_feeds_config(ARCTIC.replace("topics_hint: [arctic-security]", "topics_hint: [nato]"), "f.yaml")
