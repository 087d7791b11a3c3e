"""Saved analyses by signature (``sig#<hash>``): one model call serves every event of an
attack across replicas (:mod:`worker.pipeline.reuse`).

A put replaces the item (the newest analysis of a signature is the one worth reusing);
a read is eventually consistent, half the price of a strong one: an analysis a replica
saved a moment ago and another does not see yet costs one more model call, no more.
"""

from __future__ import annotations

from worker.store.dynamodb.table import DynamoTable, from_item, to_attr
from worker.store.keys import signature_key
from worker.store.records import SavedAnalysis


class SignatureOps(DynamoTable):
    """get_signature / put_signature."""

    def get_signature(self, signature: str) -> SavedAnalysis | None:
        response = self._call(
            "get_item", TableName=self.table_name, Key={"pk": {"S": signature_key(signature)}}
        )
        item = response.get("Item")
        return SavedAnalysis.from_dict(from_item(item)) if item else None

    def put_signature(self, saved: SavedAnalysis, *, ttl_s: float) -> None:
        item = {
            "pk": signature_key(saved.signature),
            **saved.to_dict(),
            # DynamoDB deletes expired items within days; the reader checks saved_at.
            "ttl": int(saved.saved_at + ttl_s),
        }
        self._call("put_item", TableName=self.table_name, Item={k: to_attr(v) for k, v in item.items()})
