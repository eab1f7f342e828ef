import pytest


def test_list_starts_empty(client):
    resp = client.get("/items")
    assert resp.status_code == 200
    assert resp.json() == []


def test_create_and_get(client, widget):
    assert widget == {"id": 1, "name": "widget", "price": 2.5, "description": None, "tags": ["tools"]}
    resp = client.get(f"/items/{widget['id']}")
    assert resp.status_code == 200
    assert resp.json() == widget


def test_ids_are_not_reused_after_delete(client, widget):
    assert client.delete(f"/items/{widget['id']}").status_code == 204
    second = client.post("/items", json={"name": "gadget", "price": 1}).json()
    assert second["id"] == widget["id"] + 1


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "price": 1},
        {"name": "x", "price": -1},
        {"price": 1},
        {"name": "x", "price": "lots"},
    ],
)
def test_create_rejects_invalid(client, body):
    resp = client.post("/items", json=body)
    assert resp.status_code == 422
    assert client.get("/items").json() == []


def test_get_missing_is_404(client):
    resp = client.get("/items/42")
    assert resp.status_code == 404
    assert resp.json() == {"detail": "item 42 not found"}


def test_list_filters_by_tag_and_paginates(client):
    for n in range(5):
        tags = ["even"] if n % 2 == 0 else ["odd"]
        client.post("/items", json={"name": f"item{n}", "price": n, "tags": tags})
    assert [i["name"] for i in client.get("/items", params={"tag": "even"}).json()] == ["item0", "item2", "item4"]
    page = client.get("/items", params={"offset": 1, "limit": 2}).json()
    assert [i["id"] for i in page] == [2, 3]
    assert client.get("/items", params={"limit": 0}).status_code == 422


def test_replace(client, widget):
    resp = client.put(f"/items/{widget['id']}", json={"name": "sprocket", "price": 9})
    assert resp.status_code == 200
    assert resp.json() == {"id": widget["id"], "name": "sprocket", "price": 9.0, "description": None, "tags": []}
    assert client.put("/items/99", json={"name": "x", "price": 1}).status_code == 404


def test_patch_changes_only_given_fields(client, widget):
    resp = client.patch(f"/items/{widget['id']}", json={"price": 3.75, "description": "shiny"})
    assert resp.status_code == 200
    assert resp.json() == {**widget, "price": 3.75, "description": "shiny"}
    assert client.get(f"/items/{widget['id']}").json()["description"] == "shiny"


def test_patch_missing_and_invalid(client, widget):
    assert client.patch("/items/99", json={"price": 1}).status_code == 404
    assert client.patch(f"/items/{widget['id']}", json={"price": -5}).status_code == 422


def test_delete(client, widget):
    resp = client.delete(f"/items/{widget['id']}")
    assert resp.status_code == 204
    assert resp.content == b""
    assert client.get(f"/items/{widget['id']}").status_code == 404
    assert client.delete(f"/items/{widget['id']}").status_code == 404
