"""What an alert says, built once per blast; `MessageFactory.build` is the per-recipient path."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from ..actions import action_link
from ..mail.context import external_url, org_context
from ..mail.dkim import signer_for
from ..mail.mime import build_message, domain_of, format_from, new_message_id
from ..mail.rendering import CompiledEmail, Rendered, Slot, compiled, markdown_html
from ..mail.signed_ids import MessageIds
from ..models import Action, Alert
from ..subscribers.tokens import unsubscribe_serializer

RECIPIENT_SLOTS = ("unsubscribe_url", "email")


def rendered_actions(alert: Alert) -> list[Action]:
    """The alert's chosen actions that are still open when the message is rendered."""
    return [a for a in alert.actions if a.is_open]


def action_slot(index: int) -> str:
    """Each action's link is a per-recipient slot: where it leads may differ per person."""
    return f"action_{index}"


def alert_slots(actions: list[Action]) -> tuple[str, ...]:
    return (*RECIPIENT_SLOTS, *(action_slot(i) for i in range(len(actions))))


def alert_context(alert: Alert) -> dict:
    actions = [
        {
            "title": a.title,
            "summary": a.summary,
            "call_to_action": a.call_to_action,
            "link": Slot(action_slot(i)),
        }
        for i, a in enumerate(rendered_actions(alert))
    ]
    return {
        **org_context(),
        "subject": alert.subject,
        "preheader": alert.preheader or "",
        "intro_html": markdown_html(alert.intro_md),
        "intro_text": (alert.intro_md or "").strip(),
        "actions": actions,
    }


def compiled_alert(alert: Alert) -> CompiledEmail:
    """Compiled once per process for each (alert, its text, its open actions)."""
    actions = rendered_actions(alert)
    version = (alert.id, alert.subject, alert.preheader, alert.intro_md,
               tuple((a.id, a.updated_at) for a in actions))
    return compiled("alert", alert_slots(actions), lambda: alert_context(alert), version)


def list_id() -> str:
    cfg = current_app.config
    if cfg.get("LIST_ID"):
        return cfg["LIST_ID"]
    name = " ".join(f"{cfg['ORG_NAME']} action alerts".replace('"', "").split())
    return f'"{name}" <alerts.{domain_of(cfg["MAIL_FROM"])}>'


def unsubscribe_mailto() -> str:
    cfg = current_app.config
    return cfg.get("UNSUBSCRIBE_MAILTO") or f"unsubscribe@{domain_of(cfg['MAIL_FROM'])}"


@dataclass
class MessageFactory:
    """Everything per-blast computed once; `build` is the per-recipient path."""

    alert_id: int  # an id, not the ORM object: no lazy load may open a transaction mid-batch
    compiled: CompiledEmail
    from_header: str
    domain: str
    list_id: str
    mailto: str
    unsubscribe_base: str
    serializer: object
    signer: object
    message_id: MessageIds
    action_links: tuple[str, ...]  # where each action's button leads, in the alert's order

    @classmethod
    def for_alert(cls, alert: Alert) -> MessageFactory:
        cfg = current_app.config
        base = external_url("public.unsubscribe", token="T").rsplit("/", 1)[0] + "/"
        domain = domain_of(cfg["MAIL_FROM"])
        return cls(
            alert_id=alert.id,
            compiled=compiled_alert(alert),
            from_header=format_from(cfg["MAIL_FROM"]),
            domain=domain,
            list_id=list_id(),
            mailto=unsubscribe_mailto(),
            unsubscribe_base=base,
            serializer=unsubscribe_serializer(),
            signer=signer_for(current_app),
            message_id=MessageIds.for_alert(alert.id, domain),
            action_links=tuple(action_link(a) for a in rendered_actions(alert)),
        )

    def action_urls(self, delivery_id: int | None, subscriber_id: int | None) -> dict[str, str]:
        """The per-recipient value of each action's slot."""
        return {action_slot(i): link for i, link in enumerate(self.action_links)}

    def fields(self, delivery_id: int | None, subscriber_id: int | None, email: str,
               subject_prefix: str = "") -> dict:
        """One recipient's message before MIME: what `build_message` takes."""
        token = "test-send" if subscriber_id is None else self.serializer.dumps(subscriber_id)
        unsubscribe_url = self.unsubscribe_base + token
        subject, text_qp, html_qp = self.compiled.personalize_qp(
            unsubscribe_url=unsubscribe_url, email=email,
            **self.action_urls(delivery_id, subscriber_id))
        return {
            "from_header": self.from_header,
            "to": email,
            "subject": subject_prefix + subject,
            "text_qp": text_qp,
            "html_qp": html_qp,
            "message_id": (
                self.message_id(delivery_id) if delivery_id is not None else new_message_id(self.domain)
            ),
            "extra_headers": [
                ("List-Unsubscribe",
                 f"<{unsubscribe_url}>, <mailto:{self.mailto}?subject=unsubscribe-{token}>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("List-Id", self.list_id),
                ("Feedback-ID", f"alert{self.alert_id}:alerts:{self.domain}"),
            ],
        }

    def build(self, delivery_id: int | None, subscriber_id: int | None, email: str,
              subject_prefix: str = "") -> bytes:
        """One recipient's signed message; no delivery or subscriber means a staff test send."""
        fields = self.fields(delivery_id, subscriber_id, email, subject_prefix)
        return self.signer.sign(build_message(**fields))


def preview(alert: Alert, email: str = "subscriber@example.org") -> Rendered:
    """The message as a subscriber will see it (the unsubscribe link is a sample)."""
    links = {action_slot(i): action_link(a) for i, a in enumerate(rendered_actions(alert))}
    return compiled_alert(alert).personalize(
        unsubscribe_url=external_url("public.unsubscribe", token="preview"), email=email, **links
    )
