"""The service's own API (the template's `templates/tests/<service_name>.py`, when it has one)."""


def test_only_the_platform_routes_exist_yet(make_client):
    client = make_client()
    assert set(client.get("/openapi.json").json()["paths"]) == {"/health", "/ready"}
    assert client.get("/anything").status_code == 404
