"""Copy detection: syndication edits are found, different stories sharing boilerplate are not."""

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from monitor.stages import textnorm
from monitor.clustering.copies import NearDupIndex, copy_features, similarity
from monitor.clustering.engine import ClusterItem, StoryEngine

DATA = Path(__file__).parent / "data"
T0 = datetime(2025, 2, 10, 12, tzinfo=timezone.utc)


def _items(name):
    return {r["id"]: r for r in map(json.loads, open(DATA / name / "items.jsonl", encoding="utf-8"))}


def _item(id_, title, text, hours=0, source="a.example"):
    return ClusterItem(id=id_, url=f"https://{source}/{id_}", source=source, title=title, text=text,
                       published=T0 + timedelta(hours=hours))


ORIGINAL = (DATA / "seed" / "article-3.txt").read_text(encoding="utf-8")


def test_normalize_and_hash_ignore_typography():
    a = "\u201cNATO\u201d \u2014 the  alliance\u2019s   future\n"
    b = '"nato" - the alliance\'s future'
    assert textnorm.normalize(a) == textnorm.normalize(b)
    assert textnorm.content_hash(a) == textnorm.content_hash(b)
    assert textnorm.content_hash(a) != textnorm.content_hash(b + " changed")


def test_syndicated_copy_with_headline_dateline_cut_and_footer_is_found():
    paras = ORIGINAL.strip().split("\n")
    copy = "\n".join(["BRUSSELS (Wire-A) -"] + paras[:-2] + ["Read more at Wire-A News. (c) 2025 Wire-A. All rights reserved."])
    copy = copy.replace("U.S.", "US").replace("\u2019", "'")
    eng = StoryEngine()
    first = eng.add(_item("orig", "European leaders quietly organise to keep the U.S. in NATO", ORIGINAL))
    dec = eng.add(_item("copy", "Europe scrambles to keep Washington in the alliance", copy, hours=5, source="wire-a.example"))
    assert first.duplicate_of is None
    assert dec.duplicate_of == "orig"
    assert dec.duplicate_method == "minhash"
    assert dec.story_id == first.story_id
    assert dec.story_method == "copy-of-member"


def test_exact_repost_uses_hash_and_copy_of_copy_points_at_root():
    eng = StoryEngine()
    eng.add(_item("orig", "t", ORIGINAL))
    paras = ORIGINAL.strip().split("\n")
    eng.add(_item("cut", "t2", "\n".join(paras[:-1]), hours=1))
    exact = eng.add(_item("repost", "t", ORIGINAL, hours=2))
    cut_of_cut = eng.add(_item("cut2", "t3", "\n".join(paras[:-2]), hours=3))
    assert (exact.duplicate_of, exact.duplicate_method) == ("orig", "exact-hash")
    assert cut_of_cut.duplicate_of == "orig"


def test_other_syndication_variants_are_copies():
    # Variants the dev set does not contain: reordered paragraphs, an editor's note,
    # a teaser of the first part, a light paraphrase.
    paras = ORIGINAL.strip().split("\n")
    rnd = random.Random(7)
    shuffled = paras[:]
    rnd.shuffle(shuffled)
    words = ORIGINAL.split()
    para_words = [w if rnd.random() > 0.06 else "changed" for w in words]
    variants = {
        "reordered": "\n".join(shuffled),
        "editors-note": "Editor's note: this article was updated on Feb 12 to correct the name of a minister.\n" + ORIGINAL,
        "teaser": "\n".join(paras[:4]),
        "paraphrase": " ".join(para_words),
    }
    base = copy_features(ORIGINAL)
    index = NearDupIndex()
    index.add("orig", base, None, 0.0)
    for name, text in variants.items():
        match = index.find(copy_features(text))
        assert match is not None and match.root == "orig", name


def test_shared_boilerplate_and_same_company_stories_are_not_copies():
    items = _items("dedup")
    # two unrelated AP stories with the same appended boilerplate paragraph;
    # two press releases sharing a long "about the company" paragraph
    for a, b in [("d-d157ce1e7b", "d-b073a5df02"), ("d-8d7180a79a", "d-ac947a6c17")]:
        sim = similarity(copy_features(items[a]["text"]), copy_features(items[b]["text"]))
        assert sim.containment < 0.6 or sim.paragraphs < 0.5
        eng = StoryEngine()
        eng.add(_item(a, items[a]["title"], items[a]["text"]))
        d = eng.add(_item(b, items[b]["title"], items[b]["text"], hours=1))
        assert d.duplicate_of is None


def test_short_and_empty_texts_are_never_copies():
    eng = StoryEngine()
    eng.add(_item("a", "Video", ""))
    assert eng.add(_item("b", "Video", "", hours=1)).duplicate_of is None
    eng.add(_item("c", "x", "Watch the video."))
    assert eng.add(_item("d", "y", "Watch the video.", hours=1)).duplicate_of is None


def test_evicted_originals_are_forgotten():
    eng = StoryEngine()
    eng.add(_item("orig", "t", ORIGINAL))
    eng.evict_before(T0 + timedelta(days=1))
    assert eng.add(_item("late", "t", ORIGINAL, hours=30)).duplicate_of is None


def test_band_index_finds_entries_before_and_after_merge_and_forgets_removed():
    import numpy as np
    from monitor.clustering.copies import BandIndex

    idx = BandIndex(min_merge=4)
    idx.insert(0, np.array([1, 2], dtype=np.uint64))
    assert idx.query(np.array([2, 9], dtype=np.uint64)) == {0}     # still in the recent dict
    idx.insert(1, np.array([2, 3], dtype=np.uint64))               # 4 entries: merged into the arrays
    idx.insert(2, np.array([3], dtype=np.uint64))
    assert idx.query(np.array([2], dtype=np.uint64)) == {0, 1}
    assert idx.query(np.array([3], dtype=np.uint64)) == {1, 2}
    idx.remove(1)
    assert idx.query(np.array([2, 3], dtype=np.uint64)) == {0, 2}
    idx.insert(3, np.array([7, 8, 9], dtype=np.uint64))            # next merge drops the removed slot
    assert idx.query(np.array([1, 2, 3, 7], dtype=np.uint64)) == {0, 2, 3}
    assert len(idx) == 3


def test_copies_are_found_across_many_index_merges_and_evictions():
    from monitor.clustering.copies import BandIndex

    paras = ORIGINAL.strip().split("\n")
    index = NearDupIndex()
    index._lsh = BandIndex(min_merge=50)    # merge every few articles
    rnd = random.Random(3)
    words = ORIGINAL.split()
    for i in range(40):                     # unrelated fillers: the original's words shuffled
        rnd.shuffle(words)
        index.add(f"f{i}", copy_features(" ".join(words)), None, float(i))
    index.add("orig", copy_features(ORIGINAL), None, 100.0)
    for i in range(40, 60):
        rnd.shuffle(words)
        index.add(f"f{i}", copy_features(" ".join(words)), None, 100.0 + i)
    index.evict_before(50.0)
    match = index.find(copy_features("\n".join(paras[:-2])))
    assert match is not None and match.root == "orig"
    index.evict_before(101.0)
    assert index.find(copy_features("\n".join(paras[:-2]))) is None
    assert len(index) == 20   # the 20 later fillers


def test_head_shingles_are_the_shingles_of_the_first_words():
    from monitor.stages import textnorm

    tokens = textnorm.words(ORIGINAL)
    for head_words in (1, 2, 3, 10, len(tokens) - 1, len(tokens), len(tokens) + 5):
        feats = copy_features(ORIGINAL, head_words=head_words)
        assert feats.head.tolist() == textnorm.shingle_hashes(tokens[:head_words], 3).tolist()
