"""The matching tiers: which step of the query plan (``index.plan``) answered a search.

A ``StrEnum`` because the tier leaves the engine as text (``SearchResult.tier``, the API's and the
CLI's ``"tier"``, the ``tier`` label of the search metrics, the page's explanation): a member *is*
its value, so it prints, compares and serialises as the same string callers have always seen.
This module imports nothing so that any layer, ``index.api`` included, can name the tiers.
"""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    ALL = "all"  # empty query: filters only, newest first
    ADJACENT = "adjacent"  # every unit required, multi-syllable units as their adjacent pairs
    SYLLABLES = "syllables"  # every syllable required, anywhere
    FUZZY = "fuzzy"  # one edit on folded syllables of 4+ letters, or only a typo correction matched
    PARTIAL = "partial"  # best partial match: not every syllable found
    NONE = "none"  # nothing matched at all
