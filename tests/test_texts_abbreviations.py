"""Every abbreviation a page's teaching text uses is spelled out where it first appears (issue 18, item 6)."""

from __future__ import annotations

import re

import pytest
from viz_cases import case

from pages.common import texts

#: abbreviation → a pattern that explains it
EXPLAINED = {"SDA": r"SDA\*?\*?(: | \()short-distance attention", "LDA": r"LDA\*?\*?(: | \()long-distance attention",
             "G": r"G = group side", "I": r"I = the interval|I: interval|interval I",
             "DPB": r"dynamic position bias\*?\*?,? \(?DPB", "ln N": r"entropy ln N"}


def first_use_is_explained(text: str, abbr: str) -> bool:
    used = re.search(rf"(?<![\w]){re.escape(abbr)}(?![\w])", text)
    return used is None or re.search(EXPLAINED[abbr], text) is not None


@pytest.mark.parametrize("name", ["demo224", "pp", "s_v1"])
def test_teaching_texts_explain_their_abbreviations(name):
    trace = case(name).trace
    b = trace.block(0, 1)
    pages = {"overview": texts.overview_intro(trace, "model"), "groups": texts.groups_intro(trace, 0),
             "dpb": texts.dpb_intro(b), "attention": texts.attention_intro(b, (0, 0), 0, 0)}
    for page, text in pages.items():
        for abbr in EXPLAINED:
            if abbr in ("G", "I", "ln N") and page not in ("overview", "attention"):
                continue      # the groups page is reached from the overview; its G, I are the overview's
            assert first_use_is_explained(text, abbr), (page, abbr, text)


def test_the_check_can_fail():
    assert not first_use_is_explained("blocks alternate SDA and LDA", "SDA")
