"""The items the transform tests move, their tables, and how a test compares them.

Items are `seed.all_types_item`s from 1 on: every DynamoDB type and its edge cases, but
not item 0's 350 KB attribute, so a pipeline of a few hundred items takes seconds.
"""
from __future__ import annotations

from testbed import seed
from transforms.items.arrow_codec import batch_to_items
from transforms.page import Page

COUNT = 240
ITEMS = [seed.all_types_item(i) for i in range(1, COUNT + 1)]
KEY_NAMES = ("pk", "sk")
KEYED_TABLE = seed.keyed_by("pk", sort=("sk", "N"))  # seed.ALL_TYPES_TABLE's key, without its indexes


def texts(items) -> list[str]:
    """Items as comparable texts (`seed.canonical`)."""
    return [seed.canonical(item) for item in items]


def page_texts(page: Page) -> list[str]:
    """A page's items as comparable texts."""
    return texts(batch_to_items(page.batch))


def key_of(item: dict) -> dict:
    return {name: item[name] for name in KEY_NAMES}
