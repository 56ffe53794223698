"""feeds.yaml `topics:`: validation into `TopicRule`s, every error with file, line and key path.

Built-in and custom topics go through the same code: a researcher's topic has every power the
three shipped ones have (weighted signals, proximity, ignored phrases, lead weighting, vetoes).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from monitor.stages.topicrules import TermGroup, TopicRule

TOPIC_KEYS = (
    "label", "include_terms", "include_phrases", "exclude_terms", "exclude_phrases", "ignore_phrases",
    "require_any", "signals", "min_score", "title_weight", "lead_words", "lead_weight",
    "min_density", "lead_required",
)
GROUP_KEYS = ("name", "terms", "phrases", "min_count", "near", "window")
SIGNAL_KEYS = ("name", "terms", "phrases", "weight", "max_count", "near", "window")
_TOPIC_NAME = re.compile(r"[a-z0-9][a-z0-9\-]{0,62}")
# A term is one word, optionally ending in * (prefix match); letters, digits, and inner . ' & -
# (a final dot is allowed for abbreviations such as U.S.)
_TERM = re.compile(r"[^\W_](?:[\w.'&\-]*[^\W_])?\.?\*?|[^\W_]\*")


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def _number(ctx, node: yaml.Node, path: str, lo: float, hi: float) -> float:
    value = ctx.scalar(node, path)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.error(node, path, f"expected a number, got {_describe(value)}")
    if not lo <= value <= hi:
        raise ctx.error(node, path, f"must be between {lo:g} and {hi:g}, got {value:g}")
    return float(value)


def merge_topics(builtin: list[TopicRule], own: list[TopicRule], disabled: set[str]) -> list[TopicRule]:
    """Built-in topics (in their order, replaced by a custom one of the same name), then new ones."""
    mine = {r.name: r for r in own}
    out = [mine.pop(r.name, r) for r in builtin if r.name not in disabled]
    return out + [r for r in own if r.name in mine]


def parse_topics(ctx, node: yaml.Node) -> tuple[list[TopicRule], set[str]]:
    """The `topics:` mapping -> (rules, names switched off with `name: false`).

    `ctx` is the feeds file's validation context (YAML nodes -> errors with line and key).
    """
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        return [], set()
    tmap = ctx.mapping(node, "topics", None)
    rules = []
    disabled: set[str] = set()
    for name, (key_node, value_node) in tmap.items():
        path = f"topics.{name}"
        if not _TOPIC_NAME.fullmatch(name):
            raise ctx.error(key_node, path, "topic names are lowercase letters, digits and '-' (e.g. 'ukraine-aid')")
        if isinstance(value_node, yaml.ScalarNode):
            if ctx.scalar(value_node, path) is False:
                disabled.add(name)
                continue
            raise ctx.error(value_node, path, "expected a topic rule (a mapping), or false to switch a built-in topic off")
        rmap = ctx.mapping(value_node, path, TOPIC_KEYS)
        label = ctx.text(rmap["label"][1], f"{path}.label") if "label" in rmap else name

        def words(key: str, phrases: bool) -> tuple[str, ...]:
            if key not in rmap:
                return ()
            return word_list(ctx, rmap[key][1], f"{path}.{key}", phrases=phrases)

        def groups(key: str, signal: bool) -> tuple[TermGroup, ...]:
            if key not in rmap:
                return ()
            return tuple(parse_group(ctx, g, f"{path}.{key}[{j}]", signal=signal)
                         for j, g in enumerate(ctx.sequence(rmap[key][1], f"{path}.{key}")))

        def num(key: str, default: float, lo: float, hi: float) -> float:
            return _number(ctx, rmap[key][1], f"{path}.{key}", lo, hi) if key in rmap else default

        rule = TopicRule(
            name=name,
            label=label,
            include_terms=words("include_terms", False),
            include_phrases=words("include_phrases", True),
            exclude_terms=words("exclude_terms", False),
            exclude_phrases=words("exclude_phrases", True),
            ignore_phrases=words("ignore_phrases", True),
            require_any=groups("require_any", False),
            signals=groups("signals", True),
            min_score=num("min_score", 3, 0.1, 1000),
            title_weight=ctx.integer(rmap["title_weight"][1], f"{path}.title_weight", 1, 100) if "title_weight" in rmap else 3,
            lead_words=ctx.integer(rmap["lead_words"][1], f"{path}.lead_words", 0, 5000) if "lead_words" in rmap else 0,
            lead_weight=num("lead_weight", 1.0, 0, 100),
            min_density=num("min_density", 0.0, 0, 100),
            lead_required=ctx.boolean(rmap["lead_required"][1], f"{path}.lead_required") if "lead_required" in rmap else False,
        )
        if rule.lead_required and not rule.lead_words:
            raise ctx.error(rmap["lead_required"][0], f"{path}.lead_required", "needs lead_words (how many words the lead has)")
        if not rule.include_terms and not rule.include_phrases and not any(s.weight > 0 for s in rule.signals):
            raise ctx.error(value_node, path, "needs at least one of include_terms / include_phrases (or a signal with a positive weight)")
        rules.append(rule)
    return rules, disabled


def parse_group(ctx, node: yaml.Node, path: str, *, signal: bool = False) -> TermGroup:
    """A require_any group or a signal: a plain list (shorthand) or a mapping of its keys."""
    near: tuple[str, ...] = ()
    window = 0
    weight = 1.0
    max_count = 0
    name = ""
    if isinstance(node, yaml.SequenceNode):
        if signal:
            raise ctx.error(node, path, "a signal is a mapping {terms: [...], phrases: [...], weight: N}")
        # Shorthand: a plain list; entries with a space are phrases, the rest terms.
        items = word_list(ctx, node, path, phrases=True)
        terms = tuple(x for x in items if " " not in x)
        phrases = tuple(x for x in items if " " in x)
        min_count = 1
    else:
        gmap = ctx.mapping(node, path, SIGNAL_KEYS if signal else GROUP_KEYS)
        terms = word_list(ctx, gmap["terms"][1], f"{path}.terms", phrases=False) if "terms" in gmap else ()
        phrases = word_list(ctx, gmap["phrases"][1], f"{path}.phrases", phrases=True) if "phrases" in gmap else ()
        min_count = ctx.integer(gmap["min_count"][1], f"{path}.min_count", 1, 1000) if "min_count" in gmap else 1
        if "name" in gmap:
            name = ctx.text(gmap["name"][1], f"{path}.name")
        if "near" in gmap:
            near = word_list(ctx, gmap["near"][1], f"{path}.near", phrases=True)
            if not near:
                raise ctx.error(gmap["near"][1], f"{path}.near", "empty list; give the words the terms must be near")
            if "window" not in gmap:
                raise ctx.error(gmap["near"][0], f"{path}.window", "missing; 'near' needs a window (in words, e.g. 12)")
        if "window" in gmap:
            window = ctx.integer(gmap["window"][1], f"{path}.window", 1, 1000)
            if not near:
                raise ctx.error(gmap["window"][0], f"{path}.window", "only meaningful with 'near'")
        if "weight" in gmap:
            weight = _number(ctx, gmap["weight"][1], f"{path}.weight", -100, 100)
        if "max_count" in gmap:
            max_count = ctx.integer(gmap["max_count"][1], f"{path}.max_count", 1, 1000)
    if not terms and not phrases:
        raise ctx.error(node, path, "empty group; give at least one term or phrase")
    return TermGroup(terms=terms, phrases=phrases, min_count=min_count, near=near, window=window,
                     weight=weight, max_count=max_count, name=name)


def word_list(ctx, node: yaml.Node, path: str, *, phrases: bool) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(ctx.sequence(node, path)):
        ipath = f"{path}[{i}]"
        value = ctx.scalar(item, ipath)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ctx.error(item, ipath, f"expected a word or phrase, got {_describe(value)}")
        text = " ".join(str(value).split())
        if not text:
            raise ctx.error(item, ipath, "empty term")
        if phrases:
            for word in text.split(" "):
                check_term(ctx, item, ipath, word)
        else:
            if " " in text:
                raise ctx.error(item, ipath, f"{text!r} has several words; put it under the *_phrases key")
            check_term(ctx, item, ipath, text)
        if text not in out:
            out.append(text)
    return tuple(out)


def check_term(ctx, node: yaml.Node, path: str, word: str) -> None:
    # Terms are matched literally, but characters such as ( [ | + ? are almost always someone
    # writing a regex by mistake, which would silently never match: refuse them.
    if not _TERM.fullmatch(word):
        raise ctx.error(
            node,
            path,
            f"{word!r} is not a plain word: use letters/digits (inner . ' & - allowed), "
            "optionally ending in * for a prefix match; regular expressions are not supported",
        )
    if word.endswith("*") and len(word) < 4:
        raise ctx.error(node, path, f"{word!r}: a prefix match needs at least 3 letters before '*'")
