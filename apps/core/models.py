"""The one table the plumbing keeps: blocks of rows of long lists (apps/core/positions.py)."""

from __future__ import annotations

from django.db import models


class ListBlock(models.Model):
    """A run of about a thousand consecutive rows of a long list (a workspace's training images,
    newest first), from the row whose sort key is (``created``, ``first_id``) up to the next
    block's: ``size`` rows. A deep page sums the sizes up to its offset, then skips inside one
    block (KeysetPagination's ``list_seek``). Kept by triggers on the source table only
    (apps/core/positions.py); nothing else writes here.

    ``source`` names the list's table and ``scope`` the value of its scoping column (no foreign
    key: the triggers remove a scope's blocks with its last row).
    """

    source = models.CharField(max_length=63)
    scope = models.UUIDField()
    created = models.DateTimeField()
    first_id = models.UUIDField()
    size = models.BigIntegerField()

    class Meta:
        # The unique index keeps one block per first key (the triggers' upsert of the newest
        # block); the second holds the list's order (key descending, then id), so the running sum
        # of a deep page and a row's block read it in order, without sorting.
        constraints = [
            models.UniqueConstraint(
                fields=["source", "scope", "created", "first_id"], name="unique_list_block_start"
            )
        ]
        indexes = [models.Index(fields=["source", "scope", "-created", "first_id"], name="list_block_order")]

    def __str__(self) -> str:
        return f"{self.size} row(s) of {self.source} {self.scope} from {self.created:%Y-%m-%d %H:%M:%S.%f}"
