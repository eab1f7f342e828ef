import pytest
from fastapi.testclient import TestClient

from app.main import create_app


@pytest.fixture
def client():
    """A client for a fresh app, so every test starts with an empty store."""
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture
def widget(client):
    resp = client.post("/items", json={"name": "widget", "price": 2.5, "tags": ["tools"]})
    assert resp.status_code == 201
    return resp.json()
