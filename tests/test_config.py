"""Settings from the environment and feeds.yaml validation (messages name file, line, key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import (
    ConfigError,
    FeedsConfig,
    Settings,
    default_feeds_path,
    default_topics,
    load_feeds_config,
    parse_feeds_config,
)

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- Settings


def test_settings_defaults_derive_from_home(tmp_path):
    s = Settings.from_env({"NEWSMON_HOME": str(tmp_path)}, cwd=tmp_path)
    assert s.home == tmp_path
    assert s.database_url == f"sqlite:///{tmp_path}/newsmon.sqlite"
    assert s.search_url == f"tantivy:///{tmp_path}/search-index"
    assert s.allow_hosts == frozenset()
    assert s.feeds_path == default_feeds_path()  # no ./feeds.yaml in tmp_path
    assert s.workers >= 1 and s.max_bytes > 0
    assert s.extract_timeout == 60.0


def test_settings_read_every_variable(tmp_path):
    (tmp_path / "feeds.yaml").write_text("feeds: [{url: 'https://example.org/rss'}]\n")
    env = {
        "NEWSMON_HOME": str(tmp_path),
        "DATABASE_URL": "postgresql://u@127.0.0.1:5432/test",
        "SEARCH_URL": "http://127.0.0.1:7700",
        "MEILI_MASTER_KEY": "k1",
        "NEWSMON_ALLOW_HOSTS": " 127.0.0.1, Localhost ,,",
        "NEWSMON_USER_AGENT": "ua/1",
        "NEWSMON_MAX_BYTES": "2_000_000",
        "NEWSMON_CONNECT_TIMEOUT": "2.5",
        "NEWSMON_WORKERS": "3",
        "NEWSMON_EXTRACT_TIMEOUT": "7.5",
    }
    s = Settings.from_env(env, cwd=tmp_path)
    assert s.database_url.startswith("postgresql://")
    assert s.search_url == "http://127.0.0.1:7700"
    assert s.search_api_key == "k1"
    assert s.allow_hosts == frozenset({"127.0.0.1", "localhost"})
    assert s.feeds_path == tmp_path / "feeds.yaml"  # ./feeds.yaml wins over the packaged copy
    assert (s.user_agent, s.max_bytes, s.connect_timeout, s.workers) == ("ua/1", 2_000_000, 2.5, 3)
    assert s.extract_timeout == 7.5
    assert Settings.from_env({**env, "SEARCH_API_KEY": "k2"}, cwd=tmp_path).search_api_key == "k2"
    assert Settings.from_env({**env, "NEWSMON_FEEDS": "/x/f.yaml"}, cwd=tmp_path).feeds_path == Path("/x/f.yaml")


@pytest.mark.parametrize(
    "name,value",
    [
        ("NEWSMON_WORKERS", "many"),
        ("NEWSMON_WORKERS", "0"),
        ("NEWSMON_MAX_BYTES", "10MB"),
        ("NEWSMON_READ_TIMEOUT", "-1"),
        ("NEWSMON_TOTAL_TIMEOUT", "nan"),
        ("NEWSMON_EXTRACT_TIMEOUT", "0"),
        ("NEWSMON_EXTRACT_TIMEOUT", "a minute"),
        ("NEWSMON_EXTRACT_TIMEOUT", "inf"),
        ("DATABASE_URL", "newsmon.sqlite"),
        ("NEWSMON_ALLOW_HOSTS", "127.0.0.1,bad host/"),
    ],
)
def test_settings_bad_values_name_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"NEWSMON_HOME": str(tmp_path), name: value}, cwd=tmp_path)
    assert str(err.value).startswith(name + ":")


# ---------------------------------------------------------------- feeds.yaml


def test_root_and_packaged_feeds_yaml_are_identical():
    assert (ROOT / "feeds.yaml").read_bytes() == default_feeds_path().read_bytes()


def test_default_feeds_yaml_is_valid_and_complete():
    cfg = load_feeds_config(ROOT / "feeds.yaml")
    assert isinstance(cfg, FeedsConfig)
    assert [t.name for t in cfg.topics] == ["nato", "ukraine-aid", "trump-foreign-policy"]
    assert len(cfg.feeds) >= 10
    urls = [f.url for f in cfg.feeds]
    assert all(u.startswith("https://") for u in urls)
    # News-search feeds for the three queries are present.
    joined = "\n".join(urls).lower()
    assert "q=nato" in joined and "ukraine+aid" in joined and "foreign+policy" in joined
    # Every topic is the hint of at least one feed.
    hinted = {h for f in cfg.feeds for h in f.topics_hint}
    assert hinted == {"nato", "ukraine-aid", "trump-foreign-policy"}


def test_smallest_file_gets_builtin_topics_and_defaults():
    cfg = parse_feeds_config("feeds: [{url: 'https://example.org/rss'}]\n", "mini.yaml")
    assert [f.url for f in cfg.feeds] == ["https://example.org/rss"]
    f = cfg.feeds[0]
    assert (f.name, f.interval_minutes, f.fetch_pages, f.topics_hint, f.enabled) == (None, 30, True, [], True)
    assert cfg.topics == default_topics()


def test_defaults_apply_and_feed_values_override():
    text = """\
defaults: {interval_minutes: 15, fetch_pages: false}
feeds:
  - https://a.example/rss
  - url: https://b.example/rss
    interval_minutes: 90
    fetch_pages: true
    enabled: false
    name: B
    topics_hint: [nato, nato]
"""
    cfg = parse_feeds_config(text, "f.yaml")
    a, b = cfg.feeds
    assert (a.interval_minutes, a.fetch_pages) == (15, False)
    assert (b.interval_minutes, b.fetch_pages, b.enabled, b.name, b.topics_hint) == (90, True, False, "B", ["nato"])


def test_custom_topics_sit_beside_builtin_ones():
    text = """\
feeds: [{url: 'https://a.example/rss', topics_hint: [baltic]}]
topics:
  baltic:
    label: Baltic security
    include_terms: [Baltic, Estonia]
    include_phrases: [Suwalki Gap]
    require_any:
      - [defence, security]
      - {terms: [NATO], min_count: 2}
    min_score: 2
"""
    cfg = parse_feeds_config(text, "f.yaml")
    assert [r.name for r in cfg.topics] == ["nato", "ukraine-aid", "trump-foreign-policy", "baltic"]
    rule = cfg.topics[-1]
    assert rule.name == "baltic" and rule.label == "Baltic security" and rule.min_score == 2
    assert rule.include_phrases == ("Suwalki Gap",)
    assert rule.require_any[0].terms == ("defence", "security")
    assert rule.require_any[1].min_count == 2


BAD = [
    # (text, expected line, expected fragment)
    ("feeds:\n  - url: https://a.example/rss\n    name: a: b\n", 3, "YAML syntax error: mapping values are not allowed"),
    ("feeds:\n  - url: https://a.example/rss\n    intervall_minutes: 5\n", 3,
     "feeds[0].intervall_minutes: unknown key; did you mean 'interval_minutes'?"),
    ("feeds:\n  - url: https://a.example/rss\n  - url: https://b.example/rss\n  - url: ftp://x\n", 4,
     "feeds[2].url: must be an http(s) URL, got 'ftp://x'"),
    ("feeds:\n  - url: https://a.example/rss\n  - url: https://A.example/rss\n", 3,
     "feeds[1].url: duplicate feed URL (already given on line 2)"),
    ("feeds:\n  - url: https://a.example/rss\n    name: A\n    name: B\n", 4, "feeds[0].name: duplicate key (first given on line 3)"),
    ("feeds: []\n", 1, "feeds: the list of feeds is empty"),
    ("feeds:\n  - url: https://a.example/rss\n    interval_minutes: 0\n", 3, "feeds[0].interval_minutes: must be between 1 and 10080, got 0"),
    ("feeds:\n  - url: https://a.example/rss\n    interval_minutes: soon\n", 3, "expected a whole number, got str 'soon'"),
    ("feeds:\n  - url: https://a.example/rss\n    fetch_pages: maybe\n", 3, "feeds[0].fetch_pages: expected true or false"),
    ("feeds:\n  - url: https://a.example/rss\n    topics_hint: [natoo]\n", 3,
     "feeds[0].topics_hint[0]: unknown topic 'natoo'; did you mean 'nato'?"),
    ("feeds:\n  - name: no url\n", 2, "feeds[0]: missing required key 'url'"),
    ("feeds: {url: https://a.example/rss}\n", 1, "feeds: expected a list"),
    ("fedes: []\n", 1, "fedes: unknown key; did you mean 'feeds'?"),
    ("feeds:\n  - url: !!python/object/apply:os.system ['echo hi']\n", 2, "feeds[0].url: YAML tag '!!python/object/apply:os.system' is not allowed"),
    ("feeds:\n  - url: !custom x\n", 2, "feeds[0].url: YAML tag '!custom' is not allowed"),
    ("feeds: [{url: 'https://a.example/rss'}]\ntopics:\n  t:\n    include_terms: ['NATO|Senators']\n", 4,
     "topics.t.include_terms[0]: 'NATO|Senators' is not a plain word"),
    ("feeds: [{url: 'https://a.example/rss'}]\ntopics:\n  t:\n    include_terms: ['  ']\n", 4, "topics.t.include_terms[0]: empty term"),
    ("feeds: [{url: 'https://a.example/rss'}]\ntopics:\n  t:\n    include_terms: [two words]\n", 4, "put it under the *_phrases key"),
    ("feeds: [{url: 'https://a.example/rss'}]\ntopics:\n  t:\n    label: T\n", 4, "topics.t: needs at least one of include_terms"),
    ("feeds: [{url: 'https://a.example/rss'}]\ntopics:\n  t:\n    include_terms: [a*]\n", 4, "prefix match needs at least 3 letters"),
    ("feeds: [{url: 'https://a.example/rss'}]\ntopics:\n  Bad_Name:\n    include_terms: [x]\n", 3, "topics.Bad_Name: topic names are lowercase"),
    ("feeds: [{url: 'https://a.example/rss'}]\ntopics:\n  t:\n    include_terms: [x]\n    require_any: [[]]\n", 5,
     "topics.t.require_any[0]: empty group"),
]


@pytest.mark.parametrize("text,line,fragment", BAD)
def test_bad_files_give_file_line_and_key(text, line, fragment):
    with pytest.raises(ConfigError) as err:
        parse_feeds_config(text, "feeds.yaml")
    msg = str(err.value)
    assert msg.startswith(f"feeds.yaml:{line}: "), msg
    assert fragment in msg, msg
    assert "Traceback" not in msg


def test_yaml_tags_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = f"feeds:\n  - url: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(ConfigError):
        parse_feeds_config(text, "feeds.yaml")
    assert not marker.exists()


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match=r"^e\.yaml: file is empty"):
        parse_feeds_config("", "e.yaml")
    with pytest.raises(ConfigError, match="feeds file not found"):
        load_feeds_config(tmp_path / "nope.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"feeds: [{url: 'https://a.example/\xe9'}]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_feeds_config(bad)
    with pytest.raises(ConfigError, match=r"^m\.yaml:1: feeds: missing"):
        parse_feeds_config("defaults: {interval_minutes: 5}\n", "m.yaml")


def test_clustering_overrides_are_read_and_validated():
    from monitor.config import parse_feeds_config
    from monitor.clustering.engine import ClusterSettings

    cfg = parse_feeds_config("feeds: [{url: 'https://a.example/rss'}]\nclustering:\n  window_days: 3\n  story_threshold: 0.3\n")
    assert cfg.clustering == {"window_days": 3.0, "story_threshold": 0.3}
    assert ClusterSettings(**cfg.clustering).story_threshold == 0.3
    with pytest.raises(ConfigError, match=r"feeds.yaml:4: clustering.story_threshold: expected a number"):
        parse_feeds_config("feeds: [{url: 'https://a.example/rss'}]\nclustering:\n  window_days: 3\n  story_threshold: high\n")
    with pytest.raises(ConfigError, match=r"clustering.*windw_days"):
        parse_feeds_config("feeds: [{url: 'https://a.example/rss'}]\nclustering:\n  windw_days: 3\n")


def test_empty_environment_gives_the_fetcher_defaults():
    """One source for each fetch default: settings from an empty environment build FetchPolicy()."""
    from monitor.net.policy import FetchPolicy
    from monitor.net.policy import fetch_policy

    assert fetch_policy(Settings.from_env({}, cwd=Path("/nonexistent"))) == FetchPolicy()
