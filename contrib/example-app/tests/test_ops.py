from app import __version__
from app.main import app


def test_health(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_info_counts_items(client, widget):
    resp = client.get("/info")
    assert resp.status_code == 200
    assert resp.json() == {"name": "stagepipe-example", "version": __version__, "items": 1}


def test_openapi_lists_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/info", "/items", "/items/{item_id}"} <= set(paths)


def test_module_level_app_is_ready():
    assert app.title == "stagepipe-example"
    assert len(app.state.store) == 0
