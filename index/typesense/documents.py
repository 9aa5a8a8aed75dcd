"""The cluster engine's collection: its schema, and an article as a Typesense document.

Our analysis, not Typesense's (``index.analysis`` says why): every text field holds the tokens our
analyzer made, written so that Typesense's own tokenizer keeps each of them whole and never
changes one. Measured on Typesense 0.24.1 (docs/scale-out.md): it folds combining marks but not
"đ", it drops "_", "-" and "." inside tokens unless they are listed in ``symbols_to_index`` (so
"dak_nong" and "daknong" would collide), and it lower-cases. Hence ``token()``: a token of ASCII
letters and digits is itself, any other (one with marks, another script, an underscore) is "_"
and its UTF-8 bytes in hex, and "_" is the one symbol indexed. Two syllables of a pair are joined
by "_" too; a hex-coded token never holds one, so no two pairs can be written alike.

Two views of each text, because Typesense filters and ranks with different structures:

* ``title_folded`` / ``body_folded`` strings: the folded tokens in order, searched with ``q`` so
  that Typesense's ranking (tokens matched, proximity, the field) orders the matches;
* ``folded`` / ``pair`` / ``bridge`` / ``exact`` arrays: the distinct tokens of title and body
  together, matched exactly by ``filter_by`` (``field:=[token]``), which is how the query plan's
  tiers (``index.plan``) select their match sets (and ``exact`` ranks exact diacritics first, in
  ``sort_by``). ``folded`` is a facet too: the vocabulary and its document frequencies, which the
  typo tiers need, are one facet query away.

Document frequencies as the Whoosh engine counts them (``index.spelling.Lexicon``: the title's
plus the body's, so an article holding a term in both counts twice): the speller's choices (which
variants, which pair corrections) hang on them, and with them the typo tiers' match sets. A facet
counts every element of an array, so ``folded`` holds the title's distinct syllables followed by
the body's (a syllable of both is there twice; a filter does not care); a pair's frequency is the
count of ``pair`` plus that of ``title_body_pair`` (the title's pairs that the body holds too).

Filter and facet values (category slugs, sources, months) are written with ``token()`` as well,
and read back with ``untoken()``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

from index.analysis import analyze, bridges, nfc, pairs
from index.article import VN_TZ, Article
from index.schema import source_key

# The fields of every article collection. ``doc`` (the article as JSON) and ``version`` (its
# content hash) are stored, not indexed: Typesense keeps every field of a document and indexes
# only those declared.
FIELDS: list[dict[str, Any]] = [
    {"name": "title_folded", "type": "string"},
    {"name": "body_folded", "type": "string"},
    {"name": "folded", "type": "string[]", "facet": True},
    {"name": "exact", "type": "string[]"},
    {"name": "pair", "type": "string[]"},
    {"name": "bridge", "type": "string[]"},
    {"name": "title_pair", "type": "string[]"},
    {"name": "title_body_pair", "type": "string[]"},
    {"name": "category_slug", "type": "string", "facet": True},
    {"name": "source_key", "type": "string"},
    {"name": "published", "type": "int64"},
    {"name": "year", "type": "string", "facet": True},
    {"name": "month", "type": "string", "facet": True},
    {"name": "views", "type": "int64"},
    {"name": "ident", "type": "string", "sort": True},  # the id, sortable: ties go by id, as in Whoosh
]
SYMBOLS = ["_"]


def collection_schema(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "fields": FIELDS,
        "default_sorting_field": "published",
        "symbols_to_index": SYMBOLS,
        "token_separators": [],
    }


def token(text: str) -> str:
    """A token as Typesense keeps it whole and unchanged (see the module docstring). A lone
    surrogate (a caller's ``latest("\ud800")``) becomes a token no document holds: no article's
    text can hold one."""
    if text.isascii() and text.isalnum() and text == text.lower():
        return text
    return "_" + text.encode("utf-8", "surrogatepass").hex()


def untoken(value: str) -> str:
    """``token()`` undone (facet values are read back this way)."""
    if value.startswith("_"):
        try:
            return bytes.fromhex(value[1:]).decode("utf-8")
        except ValueError:
            return value
    return value


def pair_token(pair: str) -> str:
    """An ``index.analysis`` pair ("hoi nghi") as one token ("hoi_nghi")."""
    a, _, b = pair.partition(" ")
    return token(a) + "_" + token(b)


def content_version(doc_json: str) -> int:
    """The article's content hash (the catalog's version in the Whoosh engine), 63 bits."""
    return int.from_bytes(hashlib.blake2b(doc_json.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def article_document(article: Article) -> dict[str, Any]:
    """The Typesense document of an article: our tokens, the filter fields, the stored JSON."""
    body = "\n\n".join([*article.body, *article.captions])
    title_tokens = analyze(nfc(article.title))
    body_tokens = analyze(nfc(body))
    local = article.published.astimezone(VN_TZ)
    doc_json = json.dumps(article.to_dict(), ensure_ascii=False)
    title_pairs = [pair_token(p) for p in pairs(title_tokens)]
    body_pairs = [pair_token(p) for p in pairs(body_tokens)]
    in_body = set(body_pairs)
    return {
        "id": article.id,
        "ident": article.id,
        "title_folded": " ".join(token(t.folded) for t in title_tokens),
        "body_folded": " ".join(token(t.folded) for t in body_tokens),
        "folded": [*dict.fromkeys(token(t.folded) for t in title_tokens),
                   *dict.fromkeys(token(t.folded) for t in body_tokens)],
        # As in the Whoosh index, only syllables written with marks: an exact term ranks what
        # the reader typed with marks first; a syllable typed without them never asks for one.
        "exact": list(dict.fromkeys(token(t.exact) for t in [*title_tokens, *body_tokens] if t.exact != t.folded)),
        "pair": list(dict.fromkeys([*title_pairs, *body_pairs])),
        "bridge": list(dict.fromkeys(pair_token(p) for p in bridges(body_tokens))),
        "title_pair": list(dict.fromkeys(title_pairs)),
        "title_body_pair": list(dict.fromkeys(p for p in title_pairs if p in in_body)),
        "category_slug": token(article.category_slug),
        "source_key": token(source_key(article.source)) if article.source else "",
        "published": int(article.published.astimezone(UTC).timestamp()),
        "year": f"{local.year:04d}",
        "month": token(f"{local.year:04d}-{local.month:02d}"),
        "views": max(0, article.views or 0),
        "version": content_version(doc_json),
        "title": article.title,  # stored: the suggester is built from the titles alone
        "doc": doc_json,
    }
