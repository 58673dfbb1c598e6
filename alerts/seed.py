"""The seven actions of the organisation's Action Center, as the page lists them."""

from __future__ import annotations

import re

import sqlalchemy as sa

from .extensions import db
from .models import Action

SEED_ACTIONS: list[tuple[str, str, str]] = [
    (
        "Detention is No Place for a Child",
        "Sign the Petition",
        "President Biden promised to end family detention, but right now, his Administration is "
        "considering returning to the use of this cruel practice. We demand policies that "
        "recognize the humanity and dignity of immigrant children—and will ensure children are "
        "valued, not targeted or vilified.",
    ),
    (
        "Call on Mayor Adams to Follow the Law and Close Rikers Island",
        "Sign the Petition",
        "Rikers incarcerates hundreds of young adults who are more often there because their "
        "mental health conditions have been criminalized. Join us in calling for Mayor Adams to "
        "close Rikers Island, help end the foster system-to-prison pipeline, and invest in the "
        "preventive services our communities need.",
    ),
    (
        "Stop Criminalizing Children, Invest In Their Healing",
        "Sign the Petition",
        "In communities across the nation, police—not a trained health professional—are the "
        "first to respond to a child’s mental health or social crisis. Call on your policymakers "
        "to stop prison pipelines and fund community services that will allow young people to "
        "develop and heal.",
    ),
    (
        "Sign the Healthy Kids Healthy Minds Pledge",
        "Sign the Pledge",
        "We’re asking you to take our #HealthyKidsHealthyMinds Pledge to bring child mental "
        "illness out of the shadows and into the light. By adding your name, you will be a "
        "difference maker who is helping to build awareness for this national crisis.",
    ),
    (
        "Disrupt Institutional Racism in Child Welfare Systems",
        "Sign the Pledge",
        "Pledge to help end the unjust, unnecessary, and devastating surveillance, "
        "investigation, and removal of Black children from their families. Add your name.",
    ),
    (
        "We Need Laws and Policies that Celebrate and Empower LGBTQ+ Youth",
        "Sign the Petition",
        "LGBTQ+ youth are overrepresented in child welfare systems, where they are more likely "
        "to suffer from harassment and abuse in foster care, juvenile justice settings, and "
        "homeless shelters. Demand equality NOW and call on your senators to pass the Equality "
        "Act.",
    ),
    (
        "Fight Against Discrimination, Demand More Loving Homes for Children",
        "Sign the Petition",
        "Urge Congress to pass the John Lewis Every Child Deserves a Family Act (ECDFA). By "
        "banning discrimination in child welfare, the ECDFA would increase the number of foster "
        "and adoptive homes available to youth, giving them the best possible chance to find a "
        "safe, stable, and loving home.",
    ),
]


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower().replace("+", " plus ")).strip("-")
    return slug[:120] or "action"


def seed_actions() -> tuple[int, int]:
    """Insert the missing seed actions; returns (added, already there). Never edits staff work."""
    existing = set(db.session.scalars(sa.select(Action.slug)))
    added = 0
    for position, (title, cta, summary) in enumerate(SEED_ACTIONS, start=1):
        slug = slugify(title)
        if slug in existing:
            continue
        db.session.add(
            Action(
                slug=slug,
                title=title,
                summary=summary,
                call_to_action=cta,
                kind="pledge" if "Pledge" in cta else "petition",
                position=position * 10,
                is_open=True,
            )
        )
        added += 1
    db.session.commit()
    return added, len(SEED_ACTIONS) - added
