from tests.conftest import make_user, sign_in


def test_sign_in_page_and_sign_in(app, client):
    make_user(app)
    page = client.get("/")
    assert b"UMPASS ID" in page.data
    response = sign_in(client)
    assert response.status_code == 302
    home = client.get("/").get_data(as_text=True)
    assert "Add a new device" in home and "My Settings &amp; Devices" in home
