"""feeds.yaml: loading and validation into `FeedsConfig`, errors with file, line and key path."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from monitor.config.errors import ConfigError
from monitor.config.settings import default_feeds_path


# --------------------------------------------------------------------------------------------
# feeds.yaml model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedDefaults:
    interval_minutes: int = 30
    fetch_pages: bool = True


@dataclass
class FeedConfig:
    url: str
    name: str | None = None
    interval_minutes: int = FeedDefaults.interval_minutes
    fetch_pages: bool = FeedDefaults.fetch_pages
    topics_hint: list[str] = field(default_factory=list)
    enabled: bool = True


@dataclass(frozen=True)
class TermGroup:
    """Alternatives of which at least `min_count` occurrences (title or text) must be present."""

    terms: tuple[str, ...]
    phrases: tuple[str, ...] = ()
    min_count: int = 1


@dataclass(frozen=True)
class TopicRule:
    """One topic's matching rule; see the comment block in feeds.yaml for the semantics."""

    name: str
    label: str
    include_terms: tuple[str, ...] = ()
    include_phrases: tuple[str, ...] = ()
    exclude_terms: tuple[str, ...] = ()
    exclude_phrases: tuple[str, ...] = ()
    require_any: tuple[TermGroup, ...] = ()
    min_score: int = 3
    title_weight: int = 3


@dataclass
class FeedsConfig:
    feeds: list[FeedConfig]
    topics: list[TopicRule]
    defaults: FeedDefaults = field(default_factory=FeedDefaults)
    source: str = "feeds.yaml"
    # Overrides of the story engine's settings (monitor.clustering.engine.ClusterSettings).
    clustering: dict[str, float] = field(default_factory=dict)


_default_topics_cache: list[TopicRule] | None = None


def default_topics() -> list[TopicRule]:
    """The built-in topic rules, read once from the packaged default feeds.yaml."""
    global _default_topics_cache
    if _default_topics_cache is None:
        path = default_feeds_path()
        _default_topics_cache = parse_feeds_config(path.read_text(encoding="utf-8"), str(path)).topics
    return list(_default_topics_cache)


def load_feeds_config(path: str | os.PathLike[str]) -> FeedsConfig:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: feeds file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read feeds file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    return parse_feeds_config(text, str(p))


# --------------------------------------------------------------------------------------------
# Validation over the composed YAML node tree (nodes carry line numbers; values do not)
# --------------------------------------------------------------------------------------------

_TOP_KEYS = ("feeds", "topics", "defaults", "clustering")
_FEED_KEYS = ("url", "name", "interval_minutes", "fetch_pages", "topics_hint", "enabled")
_DEFAULT_KEYS = ("interval_minutes", "fetch_pages")
_TOPIC_KEYS = (
    "label",
    "include_terms",
    "include_phrases",
    "exclude_terms",
    "exclude_phrases",
    "require_any",
    "min_score",
    "title_weight",
)
_GROUP_KEYS = ("terms", "phrases", "min_count")
_TOPIC_NAME = re.compile(r"[a-z0-9][a-z0-9\-]{0,62}")
# A term is one word, optionally ending in * (prefix match); letters, digits, and inner . ' & -
_TERM = re.compile(r"[^\W_](?:[\w.'&\-]*[^\W_])?\*?|[^\W_]\*")
_MAX_INTERVAL = 7 * 24 * 60


class _Ctx:
    def __init__(self, source: str):
        self.source = source
        self._constructor = yaml.constructor.SafeConstructor()

    def error(self, node: yaml.Node | None, path: str, msg: str) -> ConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        where = f" {path}:" if path else ""
        return ConfigError(f"{self.source}{line}:{where} {msg}")

    def check_tag(self, node: yaml.Node, path: str) -> None:
        # Only plain YAML types: an explicit tag such as !!python/object is refused, not run.
        if not node.tag.startswith("tag:yaml.org,2002:") or node.tag.startswith("tag:yaml.org,2002:python/"):
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise self.error(node, path, f"YAML tag {tag!r} is not allowed (plain values, lists and mappings only)")

    def scalar(self, node: yaml.Node, path: str) -> Any:
        self.check_tag(node, path)
        if not isinstance(node, yaml.ScalarNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
            raise self.error(node, path, f"expected a single value, got {kind}")
        try:
            # Safe constructor only: unknown tags such as !!python/object raise, never execute.
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.error(node, path, f"cannot read value: {_short_yaml_problem(exc)}") from None

    def mapping(self, node: yaml.Node, path: str, allowed: tuple[str, ...] | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        self.check_tag(node, path)
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, path, f"expected a mapping (key: value), got {_kind(node)}")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, path)
            if key == "<<" or key_node.tag == "tag:yaml.org,2002:merge":
                raise self.error(key_node, path, "YAML merge keys (<<) are not supported here")
            if not isinstance(key, str):
                raise self.error(key_node, path, f"keys must be text, got {key!r}")
            sub = f"{path}.{key}" if path else key
            if key in out:
                first = out[key][0].start_mark.line + 1
                raise self.error(key_node, sub, f"duplicate key (first given on line {first})")
            if allowed is not None and key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; allowed keys: {', '.join(allowed)}"
                raise self.error(key_node, sub, f"unknown key{suggestion}")
            out[key] = (key_node, value_node)
        return out

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        self.check_tag(node, path)
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, path, f"expected a list, got {_kind(node)}")
        return list(node.value)

    def text(self, node: yaml.Node, path: str, *, allow_empty: bool = False) -> str:
        value = self.scalar(node, path)
        if not isinstance(value, str):
            raise self.error(node, path, f"expected text, got {_describe(value)}")
        if not allow_empty and not value.strip():
            raise self.error(node, path, "must not be empty")
        return value.strip()

    def integer(self, node: yaml.Node, path: str, lo: int, hi: int) -> int:
        value = self.scalar(node, path)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(node, path, f"expected a whole number, got {_describe(value)}")
        if not lo <= value <= hi:
            raise self.error(node, path, f"must be between {lo} and {hi}, got {value}")
        return value

    def boolean(self, node: yaml.Node, path: str) -> bool:
        value = self.scalar(node, path)
        if not isinstance(value, bool):
            raise self.error(node, path, f"expected true or false, got {_describe(value)}")
        return value


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if node.tag == "tag:yaml.org,2002:null":
        return "nothing (null)"
    return f"the value {node.value!r}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def _short_yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return str(problem)


def parse_feeds_config(text: str, source_name: str = "feeds.yaml") -> FeedsConfig:
    """Validate feeds.yaml text; every error names `source_name`, the line and the key path."""
    ctx = _Ctx(source_name)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise ConfigError(f"{source_name}{line}: YAML syntax error: {problem}{context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source_name}: YAML error: {_short_yaml_problem(exc)}") from None
    if root is None:
        raise ConfigError(f"{source_name}: file is empty; expected at least 'feeds: [{{url: ...}}]'")

    top = ctx.mapping(root, "", _TOP_KEYS)

    defaults = FeedDefaults()
    if "defaults" in top:
        dmap = ctx.mapping(top["defaults"][1], "defaults", _DEFAULT_KEYS)
        interval = defaults.interval_minutes
        fetch_pages = defaults.fetch_pages
        if "interval_minutes" in dmap:
            interval = ctx.integer(dmap["interval_minutes"][1], "defaults.interval_minutes", 1, _MAX_INTERVAL)
        if "fetch_pages" in dmap:
            fetch_pages = ctx.boolean(dmap["fetch_pages"][1], "defaults.fetch_pages")
        defaults = FeedDefaults(interval, fetch_pages)

    if "topics" in top:
        topics = _parse_topics(ctx, top["topics"][1])
    else:
        topics = default_topics()
    topic_names = [t.name for t in topics]

    if "feeds" not in top:
        raise ctx.error(root, "feeds", "missing; expected a list of feeds, e.g. 'feeds: [{url: https://...}]'")
    feed_nodes = ctx.sequence(top["feeds"][1], "feeds")
    if not feed_nodes:
        raise ctx.error(top["feeds"][1], "feeds", "the list of feeds is empty; give at least one {url: ...}")

    feeds: list[FeedConfig] = []
    seen: dict[str, int] = {}
    for i, fnode in enumerate(feed_nodes):
        path = f"feeds[{i}]"
        if isinstance(fnode, yaml.ScalarNode) and isinstance(ctx.scalar(fnode, path), str):
            # A bare URL string is a convenient shorthand for {url: ...}.
            fmap = {"url": (fnode, fnode)}
        else:
            fmap = ctx.mapping(fnode, path, _FEED_KEYS)
        if "url" not in fmap:
            raise ctx.error(fnode, path, "missing required key 'url'")
        url_node = fmap["url"][1]
        url = _validate_url(ctx, url_node, f"{path}.url")
        key = url.lower()
        if key in seen:
            raise ctx.error(url_node, f"{path}.url", f"duplicate feed URL (already given on line {seen[key]})")
        seen[key] = url_node.start_mark.line + 1

        feed = FeedConfig(url=url, interval_minutes=defaults.interval_minutes, fetch_pages=defaults.fetch_pages)
        if "name" in fmap:
            feed.name = ctx.text(fmap["name"][1], f"{path}.name")
        if "interval_minutes" in fmap:
            feed.interval_minutes = ctx.integer(fmap["interval_minutes"][1], f"{path}.interval_minutes", 1, _MAX_INTERVAL)
        if "fetch_pages" in fmap:
            feed.fetch_pages = ctx.boolean(fmap["fetch_pages"][1], f"{path}.fetch_pages")
        if "enabled" in fmap:
            feed.enabled = ctx.boolean(fmap["enabled"][1], f"{path}.enabled")
        if "topics_hint" in fmap:
            hints = []
            for j, hnode in enumerate(ctx.sequence(fmap["topics_hint"][1], f"{path}.topics_hint")):
                hpath = f"{path}.topics_hint[{j}]"
                hint = ctx.text(hnode, hpath)
                if hint not in topic_names:
                    close = difflib.get_close_matches(hint, topic_names, n=1)
                    suggestion = f"; did you mean {close[0]!r}?" if close else ""
                    known = ", ".join(topic_names) or "none defined"
                    raise ctx.error(hnode, hpath, f"unknown topic {hint!r}{suggestion} (known topics: {known})")
                if hint not in hints:
                    hints.append(hint)
            feed.topics_hint = hints
        feeds.append(feed)

    clustering: dict[str, float] = {}
    if "clustering" in top:
        cmap = ctx.mapping(top["clustering"][1], "clustering", tuple(CLUSTERING_KEYS))
        for key, (_, vnode) in cmap.items():
            lo, hi = CLUSTERING_KEYS[key]
            value = ctx.scalar(vnode, f"clustering.{key}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ctx.error(vnode, f"clustering.{key}", f"expected a number from {lo} to {hi}, got {_describe(value)}")
            clustering[key] = float(value)

    return FeedsConfig(feeds=feeds, topics=topics, defaults=defaults, source=source_name, clustering=clustering)


# Story-engine settings an operator may tune in feeds.yaml, with their allowed ranges
# (defaults and their rationale: monitor/story_engine.py, chosen by benchmarks/cluster_eval.py).
CLUSTERING_KEYS: dict[str, tuple[float, float]] = {
    "window_days": (0.5, 90),
    "story_threshold": (0.01, 0.99),
    "time_scale_days": (0.1, 60),
    "containment_threshold": (0.3, 1.0),
    "paragraph_threshold": (0.0, 1.0),
}


def check_feed_url(value: object) -> str:
    """The feed URL, stripped, if it is one feeds.yaml accepts; ValueError with the reason otherwise.
    `newsmon feeds add` uses the same rule."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    url = value.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"must be an http(s) URL, got {url!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not host or any(c.isspace() for c in url):
        raise ValueError(f"must be an http(s) URL, got {url!r}")
    return url


def _validate_url(ctx: _Ctx, node: yaml.Node, path: str) -> str:
    try:
        return check_feed_url(ctx.scalar(node, path))
    except ValueError as exc:
        raise ctx.error(node, path, str(exc)) from None


def _parse_topics(ctx: _Ctx, node: yaml.Node) -> list[TopicRule]:
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        return []
    tmap = ctx.mapping(node, "topics", None)
    rules = []
    for name, (key_node, value_node) in tmap.items():
        path = f"topics.{name}"
        if not _TOPIC_NAME.fullmatch(name):
            raise ctx.error(key_node, path, "topic names are lowercase letters, digits and '-' (e.g. 'ukraine-aid')")
        rmap = ctx.mapping(value_node, path, _TOPIC_KEYS)
        label = ctx.text(rmap["label"][1], f"{path}.label") if "label" in rmap else name

        def words(key: str, phrases: bool) -> tuple[str, ...]:
            if key not in rmap:
                return ()
            return _word_list(ctx, rmap[key][1], f"{path}.{key}", phrases=phrases)

        groups = []
        if "require_any" in rmap:
            for j, gnode in enumerate(ctx.sequence(rmap["require_any"][1], f"{path}.require_any")):
                groups.append(_parse_group(ctx, gnode, f"{path}.require_any[{j}]"))
        rule = TopicRule(
            name=name,
            label=label,
            include_terms=words("include_terms", False),
            include_phrases=words("include_phrases", True),
            exclude_terms=words("exclude_terms", False),
            exclude_phrases=words("exclude_phrases", True),
            require_any=tuple(groups),
            min_score=ctx.integer(rmap["min_score"][1], f"{path}.min_score", 1, 1000) if "min_score" in rmap else 3,
            title_weight=ctx.integer(rmap["title_weight"][1], f"{path}.title_weight", 1, 100) if "title_weight" in rmap else 3,
        )
        if not rule.include_terms and not rule.include_phrases:
            raise ctx.error(value_node, path, "needs at least one of include_terms / include_phrases")
        rules.append(rule)
    return rules


def _parse_group(ctx: _Ctx, node: yaml.Node, path: str) -> TermGroup:
    if isinstance(node, yaml.SequenceNode):
        # Shorthand: a plain list; entries with a space are phrases, the rest terms.
        items = _word_list(ctx, node, path, phrases=True)
        terms = tuple(x for x in items if " " not in x)
        phrases = tuple(x for x in items if " " in x)
        for t in terms:
            _check_term(ctx, node, path, t)
        min_count = 1
    else:
        gmap = ctx.mapping(node, path, _GROUP_KEYS)
        terms = _word_list(ctx, gmap["terms"][1], f"{path}.terms", phrases=False) if "terms" in gmap else ()
        phrases = _word_list(ctx, gmap["phrases"][1], f"{path}.phrases", phrases=True) if "phrases" in gmap else ()
        min_count = ctx.integer(gmap["min_count"][1], f"{path}.min_count", 1, 1000) if "min_count" in gmap else 1
    if not terms and not phrases:
        raise ctx.error(node, path, "empty group; give at least one term or phrase")
    return TermGroup(terms=terms, phrases=phrases, min_count=min_count)


def _word_list(ctx: _Ctx, node: yaml.Node, path: str, *, phrases: bool) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(ctx.sequence(node, path)):
        ipath = f"{path}[{i}]"
        value = ctx.scalar(item, ipath)
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ctx.error(item, ipath, f"expected a word or phrase, got {_describe(value)}")
        text = " ".join(str(value).split())
        if not text:
            raise ctx.error(item, ipath, "empty term")
        if phrases:
            for word in text.split(" "):
                _check_term(ctx, item, ipath, word)
        else:
            if " " in text:
                raise ctx.error(item, ipath, f"{text!r} has several words; put it under the *_phrases key")
            _check_term(ctx, item, ipath, text)
        if text not in out:
            out.append(text)
    return tuple(out)


def _check_term(ctx: _Ctx, node: yaml.Node, path: str, word: str) -> None:
    # Terms are matched literally (we escape them), but characters such as ( [ | + ? are almost
    # always someone writing a regex by mistake, which would silently never match: refuse them.
    if not _TERM.fullmatch(word):
        raise ctx.error(
            node,
            path,
            f"{word!r} is not a plain word: use letters/digits (inner . ' & - allowed), "
            "optionally ending in * for a prefix match; regular expressions are not supported",
        )
    if word.endswith("*") and len(word) < 4:
        raise ctx.error(node, path, f"{word!r}: a prefix match needs at least 3 letters before '*'")
