from tests.conftest import link_in, subscribe


def test_signup_confirm_unsubscribe(client, smtp, celery_worker, app):
    assert client.get("/").status_code == 200
    resp = subscribe(client, "Ada@Example.ORG")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    [msg] = smtp.handler.wait_for(1, timeout=20)
    assert msg.rcpt_tos == ["Ada@example.org"]
    link = link_in(msg, "/confirm/")
    print(link)
