"""HTTP API.  Run with: python -m uvicorn app.main:app --host 0.0.0.0 --port 8000"""

from typing import List, Optional

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status

from . import __version__
from .models import Health, Info, Item, ItemIn, ItemPatch
from .store import ItemStore

APP_NAME = "stagepipe-example"


def get_store(request: Request) -> ItemStore:
    return request.app.state.store


def _not_found(item_id: int) -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=f"item {item_id} not found")


def create_app() -> FastAPI:
    """A fresh app with its own empty store (tests get one each)."""
    app = FastAPI(title=APP_NAME, version=__version__)
    app.state.store = ItemStore()

    @app.get("/health", response_model=Health, tags=["ops"])
    def health() -> Health:
        return Health(status="ok")

    @app.get("/info", response_model=Info, tags=["ops"])
    def info(store: ItemStore = Depends(get_store)) -> Info:
        return Info(name=APP_NAME, version=__version__, items=len(store))

    @app.post("/items", response_model=Item, status_code=status.HTTP_201_CREATED, tags=["items"])
    def create_item(data: ItemIn, store: ItemStore = Depends(get_store)) -> Item:
        return store.create(data)

    @app.get("/items", response_model=List[Item], tags=["items"])
    def list_items(
        tag: Optional[str] = None,
        offset: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=1000),
        store: ItemStore = Depends(get_store),
    ) -> List[Item]:
        return store.list(tag=tag, offset=offset, limit=limit)

    @app.get("/items/{item_id}", response_model=Item, tags=["items"])
    def get_item(item_id: int, store: ItemStore = Depends(get_store)) -> Item:
        item = store.get(item_id)
        if item is None:
            raise _not_found(item_id)
        return item

    @app.put("/items/{item_id}", response_model=Item, tags=["items"])
    def replace_item(item_id: int, data: ItemIn, store: ItemStore = Depends(get_store)) -> Item:
        item = store.replace(item_id, data)
        if item is None:
            raise _not_found(item_id)
        return item

    @app.patch("/items/{item_id}", response_model=Item, tags=["items"])
    def update_item(item_id: int, patch: ItemPatch, store: ItemStore = Depends(get_store)) -> Item:
        item = store.update(item_id, patch)
        if item is None:
            raise _not_found(item_id)
        return item

    @app.delete("/items/{item_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["items"])
    def delete_item(item_id: int, store: ItemStore = Depends(get_store)) -> Response:
        if not store.delete(item_id):
            raise _not_found(item_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return app


app = create_app()
