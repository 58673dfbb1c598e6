"""Staff page for API tokens: list, make one (its secret shown this once), revoke."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from ... import apitokens
from ...extensions import db
from .auth import current_staff
from .common import record


def _page(*, new_token: str | None = None, error: str | None = None, status: int = 200,
          name: str = "", scopes: tuple[str, ...] = ("read",)):
    return render_template("staff/api_tokens.html", tokens=apitokens.tokens(), scopes=apitokens.SCOPES,
                           new_token=new_token, error=error, name=name, chosen=scopes), status


def api_tokens():
    return _page()


def api_token_create():
    """Make a token and show it on the answer itself: it is never shown again."""
    staff = current_staff()
    assert staff is not None  # the blueprint's gate
    name = request.form.get("name", "")
    scopes = tuple(request.form.getlist("scope"))
    try:
        _token, plain = apitokens.create(name, list(scopes), created_by=staff.email)
    except apitokens.TokenError as exc:
        db.session.rollback()
        return _page(error=str(exc), status=400, name=name, scopes=scopes)
    db.session.flush()
    record("api_token.create", f"api token {_token.id}", name=_token.name, scopes=sorted(scopes))
    db.session.commit()
    return _page(new_token=plain)


def api_token_revoke(token_id: int):
    token = apitokens.revoke(token_id)
    if token is None:
        abort(404)
    record("api_token.revoke", f"api token {token_id}", name=token.name)
    db.session.commit()
    flash(f"Token “{token.name}” revoked: requests with it are refused from now on.", "success")
    return redirect(url_for("staff.api_tokens"), code=303)
