"""A thread-safe in-memory item store."""

import threading
from typing import Dict, List, Optional

from .models import Item, ItemIn, ItemPatch, dump


class ItemStore:
    def __init__(self) -> None:
        self._items: Dict[int, Item] = {}
        self._next_id = 1
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def create(self, data: ItemIn) -> Item:
        with self._lock:
            item = Item(id=self._next_id, **dump(data))
            self._items[item.id] = item
            self._next_id += 1
            return item

    def list(self, tag: Optional[str] = None, offset: int = 0, limit: int = 100) -> List[Item]:
        with self._lock:
            items = sorted(self._items.values(), key=lambda i: i.id)
        if tag is not None:
            items = [i for i in items if tag in i.tags]
        return items[offset : offset + limit]

    def get(self, item_id: int) -> Optional[Item]:
        return self._items.get(item_id)

    def replace(self, item_id: int, data: ItemIn) -> Optional[Item]:
        with self._lock:
            if item_id not in self._items:
                return None
            item = Item(id=item_id, **dump(data))
            self._items[item_id] = item
            return item

    def update(self, item_id: int, patch: ItemPatch) -> Optional[Item]:
        with self._lock:
            current = self._items.get(item_id)
            if current is None:
                return None
            merged = dump(current)
            merged.update(dump(patch, exclude_unset=True))
            item = Item(**merged)
            self._items[item_id] = item
            return item

    def delete(self, item_id: int) -> bool:
        with self._lock:
            return self._items.pop(item_id, None) is not None
