"""Request and response models.

Written to work with pydantic 1.10 (Debian bookworm, the offline base image)
and pydantic 2 (what pip installs online).
"""

from typing import Any, Dict, List, Optional

from pydantic import BaseModel, Field


class ItemIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=100)
    price: float = Field(..., ge=0)
    description: Optional[str] = Field(None, max_length=1000)
    tags: List[str] = Field(default_factory=list)


class ItemPatch(BaseModel):
    name: Optional[str] = Field(None, min_length=1, max_length=100)
    price: Optional[float] = Field(None, ge=0)
    description: Optional[str] = Field(None, max_length=1000)
    tags: Optional[List[str]] = None


class Item(ItemIn):
    id: int


class Health(BaseModel):
    status: str


class Info(BaseModel):
    name: str
    version: str
    items: int


def dump(model: BaseModel, **kwargs: Any) -> Dict[str, Any]:
    """model.model_dump() on pydantic 2, model.dict() on pydantic 1."""
    method = getattr(model, "model_dump", None) or model.dict
    return method(**kwargs)
