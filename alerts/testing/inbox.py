"""The dev inbox in the browser: what the mail catcher received, for `alerts dev` and the tests."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .mailcatcher import MailCatcher

if TYPE_CHECKING:
    from flask import Flask
    from flask.typing import ResponseReturnValue

INBOX_PAGE_SIZE = 50
BASE_TARGET = re.compile(r"(<head[^>]*>)", re.I)


def inbox_app(catcher: MailCatcher) -> Flask:
    """The dev inbox in the browser: received messages (newest first, paged, searchable), each one's parts."""
    from flask import Flask, abort, redirect, render_template_string, request

    app = Flask("mailcatcher")

    @app.get("/")
    def index() -> str:
        q = (request.args.get("q") or "").strip()
        page = max(1, request.args.get("page", 1, type=int) or 1)
        items = list(enumerate(catcher.messages))[::-1]
        total = len(items)
        if q:
            needle = q.lower()
            items = [(i, m) for i, m in items
                     if needle in m.subject.lower() or any(needle in r.lower() for r in m.rcpt_tos)]
        pages = max(1, -(-len(items) // INBOX_PAGE_SIZE))
        page = min(page, pages)
        shown = items[(page - 1) * INBOX_PAGE_SIZE: page * INBOX_PAGE_SIZE]
        store = catcher.handler.store
        return render_template_string(INBOX, items=shown, matches=len(items), total=total, q=q,
                                      page=page, pages=pages, kept=store.folder if store else None)

    @app.post("/clear")
    def clear() -> ResponseReturnValue:
        origin = request.headers.get("Origin")
        if origin and origin.rstrip("/") != request.host_url.rstrip("/"):
            abort(403)  # only this page's own button empties the inbox
        catcher.handler.clear()
        return redirect("/", code=303)

    @app.get("/<int:i>")
    def show(i: int) -> str:
        msgs = catcher.messages
        if not 0 <= i < len(msgs):
            abort(404)
        msg = msgs[i].message
        html = msg.get_body(("html",))
        text = msg.get_body(("plain",))
        return render_template_string(
            MESSAGE,
            i=i,
            msg=msg,
            item=msgs[i],
            html=_links_in_new_tab(html.get_content()) if html else None,
            text=text.get_content() if text else None,
        )

    @app.get("/<int:i>/raw")
    def raw(i: int) -> ResponseReturnValue:
        msgs = catcher.messages
        if not 0 <= i < len(msgs):
            abort(404)
        return msgs[i].data, 200, {"Content-Type": "text/plain; charset=utf-8"}

    return app


def _links_in_new_tab(html: str) -> str:
    """As a mail client does: a link in the message opens a page of its own, where forms work."""
    tag = '<base target="_blank">'
    if BASE_TARGET.search(html):
        return BASE_TARGET.sub(lambda m: m.group(1) + tag, html, count=1)
    return tag + html


_STYLE = (
    "<meta name=viewport content='width=device-width, initial-scale=1'>"
    "<style>body{font-family:system-ui,sans-serif;margin:16px;color:#1c2430}"
    "table{border-collapse:collapse;width:100%}td,th{padding:6px 10px;border-bottom:1px solid #ddd;"
    "text-align:left;overflow-wrap:break-word}iframe{width:100%;height:70vh;border:1px solid #ccc}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f7f9;padding:12px}"
    ".bar{display:flex;gap:10px;flex-wrap:wrap;align-items:center;margin:0 0 12px}"
    ".bar input{padding:6px 8px;font:inherit;min-width:0;flex:1 1 200px;max-width:360px}"
    ".bar button{font:inherit;padding:6px 12px}.pager{display:flex;gap:16px;margin:12px 0}"
    # On a phone each message is two lines: when and to whom, then the subject across the width.
    "@media (max-width:600px){.msgs tr:first-child{display:none}"
    ".msgs tr{display:grid;grid-template-columns:auto 1fr;column-gap:10px;padding:8px 0;"
    "border-bottom:1px solid #ddd}.msgs td{border:0;padding:2px 0}"
    ".msgs td:nth-child(-n+2){font-size:.85em;color:#555;overflow-wrap:anywhere}"
    ".msgs td:last-child{grid-column:1/-1}}</style>"
)
INBOX = (
    "<!doctype html><meta charset=utf-8><title>Dev inbox</title>" + _STYLE +
    "<h1>Dev inbox</h1>"
    "<div class=bar><form method=get role=search class=bar style='margin:0'>"
    "<label for=q>Search</label>"
    "<input type=search id=q name=q value='{{ q }}' placeholder='subject or address'>"
    "<button>Search</button>{% if q %}<a href='/'>Show all</a>{% endif %}</form>"
    "<form method=post action='/clear' style='margin:0'><button>Clear inbox</button></form></div>"
    "<p>{% if q %}{{ matches }} of {% endif %}{{ total }} message{{ '' if total == 1 else 's' }},"
    " newest first. Reload to refresh."
    " Links in a message open in a new tab.</p>"
    "{% if kept %}<p>Kept across restarts in {{ kept }} (Clear inbox empties it).</p>"
    "{% else %}<p>Not kept: restarting empties this inbox.</p>{% endif %}"
    "<table class=msgs><tr><th>Received</th><th>To</th><th>Subject</th></tr>"
    "{% for i, m in items %}<tr><td>{{ m.at.strftime('%H:%M:%S') }}</td><td>{{ m.rcpt_tos|join(', ') }}</td>"
    "<td><a href='/{{ i }}'>{{ m.subject or '(no subject)' }}</a></td></tr>{% endfor %}</table>"
    "{% if pages > 1 %}<nav class=pager aria-label=Pages>"
    "{% set also = '&q=' ~ q|urlencode if q else '' %}"
    "{% if page > 1 %}<a rel=prev href='?page={{ page - 1 }}{{ also }}'>&larr; Newer</a>{% endif %}"
    "<span>Page {{ page }} of {{ pages }}</span>"
    "{% if page < pages %}<a rel=next href='?page={{ page + 1 }}{{ also }}'>Older &rarr;</a>{% endif %}"
    "</nav>{% endif %}"
)
MESSAGE = (
    "<!doctype html><meta charset=utf-8><title>{{ msg['subject'] }}</title>" + _STYLE +
    "<p><a href='/'>&larr; Inbox</a> · <a href='/{{ i }}/raw'>raw</a></p>"
    "<h1>{{ msg['subject'] }}</h1><p>To: {{ item.rcpt_tos|join(', ') }}<br>From: {{ msg['from'] }}</p>"
    "{% if html %}<h2>HTML</h2><p>Links open in a new tab, as from a mail client.</p>"
    "<iframe title='HTML part' sandbox='allow-popups allow-popups-to-escape-sandbox'"
    " srcdoc='{{ html }}'></iframe>{% endif %}"
    "{% if text %}<h2>Text</h2><pre>{{ text|urlize(target='_blank') }}</pre>{% endif %}"
)
