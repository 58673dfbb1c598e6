"""The Action Center's actions: the seven seeded ones, which are open, their order, their links, edits."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from .. import i18n
from ..extensions import db
from ..mail.context import external_url
from ..models import KINDS, Action, Signature
from .targets import parse_lines, set_targets, targets_of

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
        "Call Your Senators",
        "LGBTQ+ youth are overrepresented in child welfare systems, where they are more likely "
        "to suffer from harassment and abuse in foster care, juvenile justice settings, and "
        "homeless shelters. Demand equality NOW and call on your senators to pass the Equality "
        "Act.",
    ),
    (
        "Fight Against Discrimination, Demand More Loving Homes for Children",
        "Send the Letter",
        "Urge Congress to pass the John Lewis Every Child Deserves a Family Act (ECDFA). By "
        "banning discrimination in child welfare, the ECDFA would increase the number of foster "
        "and adoptive homes available to youth, giving them the best possible chance to find a "
        "safe, stable, and loving home.",
    ),
]


# What the seed page says beyond title, button and summary: whom each action addresses
# (where its text names someone) and, for the pledges, the words a signer commits to.
SEED_TARGETS: dict[str, str] = {
    "Detention is No Place for a Child": "President Biden and his Administration",
    "Call on Mayor Adams to Follow the Law and Close Rikers Island": "Mayor Adams",
    "We Need Laws and Policies that Celebrate and Empower LGBTQ+ Youth": "Your senators",
    "Fight Against Discrimination, Demand More Loving Homes for Children": "Congress",
}
SEED_PLEDGES: dict[str, str] = {
    "Sign the Healthy Kids Healthy Minds Pledge": (
        "I take the #HealthyKidsHealthyMinds Pledge: I will help bring child mental illness out "
        "of the shadows and into the light, and build awareness of this national crisis."
    ),
    "Disrupt Institutional Racism in Child Welfare Systems": (
        "I pledge to help end the unjust, unnecessary, and devastating surveillance, "
        "investigation, and removal of Black children from their families."
    ),
}


LGBTQ_YOUTH = "We Need Laws and Policies that Celebrate and Empower LGBTQ+ Youth"
ECDFA = "Fight Against Discrimination, Demand More Loving Homes for Children"

# The seed actions that are a call or a letter (the others are petitions, or pledges where the
# button says so): kind, text, and their targets as the staff form writes them. The targets are
# placeholders: who someone's senators and representative are depends on where they live.
SEED_KINDS: dict[str, dict] = {
    LGBTQ_YOUTH: {
        "kind": "call",
        "call_script": (
            "Hello, my name is [your name] and I live in [city, state]. I'm calling to ask the Senator "
            "to support the Equality Act. LGBTQ+ youth are overrepresented in child welfare systems, "
            "where they are more likely to suffer harassment and abuse in foster care, juvenile justice "
            "settings and homeless shelters. The Equality Act would protect them from discrimination. "
            "Will the Senator vote for it? Thank you for your time."),
        "targets": ["U.S. Capitol Switchboard, Ask for your senators' offices tel:+12022243121 "
                    "[placeholder]"],
    },
    ECDFA: {
        "kind": "letter",
        "letter_subject": "Please pass the John Lewis Every Child Deserves a Family Act",
        "letter_text": (
            "I am writing as your constituent to urge you to support the John Lewis Every Child "
            "Deserves a Family Act (ECDFA).\n\n"
            "Every child in foster care deserves a safe, stable and loving home. Yet discrimination in "
            "child welfare turns away families who could care for children, and harms LGBTQ+ youth in "
            "care.\n\n"
            "By banning discrimination in child welfare, the ECDFA would increase the number of foster "
            "and adoptive homes available to youth, giving them the best possible chance to find a "
            "safe, stable and loving home.\n\n"
            "Please co-sponsor the ECDFA and vote for it."),
        "allow_comments": True,
        "targets": [
            "Your Representative, U.S. House of Representatives <representative@example.org> [placeholder]",
            "Your Senators, U.S. Senate <senators@example.org> [placeholder]",
        ],
    },
}
SEED_FIELDS = ("kind", "letter_subject", "letter_text", "call_script", "allow_comments")

TRANSLATED_FIELDS = ("title", "summary", "body", "call_to_action", "pledge_text", "target", "call_script")

# How a kind is named to people (the Action Center card, the page header); lazily, in their language.
KIND_NAMES = {"petition": _l("Petition"), "pledge": _l("Pledge"),
              "letter": _l("Letter"), "call": _l("Call")}


@dataclass(frozen=True)
class ActionText:
    """What an action says in one language: all of it from one version, never a mixture."""

    lang: str
    title: str
    summary: str
    body: str
    call_to_action: str
    pledge_text: str | None
    target: str | None = None  # whom it addresses (a version without one names the default's)
    call_script: str | None = None  # what a caller says (a version without one: the default's)


def text_of(action: Action, lang: str | None = None) -> ActionText:
    """The action's text in `lang`, else (no version there, or one without a title) the
    default language's, whole."""
    version = i18n.version_in(action.translations, lang, "title")
    if version is None:
        return ActionText(i18n.default_language(), action.title, action.summary or "", action.body or "",
                          action.call_to_action, action.pledge_text, action.target, action.call_script)
    return ActionText(str(i18n.known(lang)), version["title"], version.get("summary") or "",
                      version.get("body") or "", version.get("call_to_action") or action.call_to_action,
                      version.get("pledge_text") or None, version.get("target") or action.target,
                      version.get("call_script") or action.call_script)


def has_version(action: Action, lang: str) -> bool:
    return i18n.version_in(action.translations, lang, "title") is not None


def missing_languages(action: Action) -> list[str]:
    """The other languages this action has no text in (the staff lists' badge)."""
    return [code for code in i18n.other_languages() if not has_version(action, code)]


def save_translation(action: Action, lang: str, **version: str | None) -> bool:
    """Set (or, all blank, remove) the action's text in `lang`; whether it changed.

    A version needs its title and call to action, and a pledge's words where the default has
    them, so that nobody reads half of one language and half of another."""
    code = i18n.known(lang)
    if code is None or code == i18n.default_language():
        raise ActionError("title_es", f"“{lang}” is not one of the other languages.")
    given = {k: (version.get(k) or "").strip() for k in TRANSLATED_FIELDS}
    given["title"] = " ".join(given["title"].split())
    given["call_to_action"] = " ".join(given["call_to_action"].split())
    name = i18n.STAFF_NAMES.get(code, code)
    if any(given.values()):
        if not given["title"]:
            raise ActionError(f"title_{code}", f"The {name} version needs a title (or leave it all blank).")
        if not given["call_to_action"]:
            raise ActionError(f"call_to_action_{code}", f"The {name} version needs a button text.")
        if len(given["title"]) > 200:
            raise ActionError(f"title_{code}", "The title is longer than 200 characters.")
        if len(given["call_to_action"]) > 80:
            raise ActionError(f"call_to_action_{code}", "The button text is longer than 80 characters.")
        if action.kind == "pledge" and action.pledge_text and not given["pledge_text"]:
            raise ActionError(f"pledge_text_{code}", f"The {name} version needs the pledge’s words.")
    before = action.translations
    after = i18n.cleaned_translations(before, code, given)
    if after == (before or None):
        return False
    action.translations = after
    return True


# The seed actions in Spanish (each text whole: title, button, summary, and a pledge's words),
# keyed by the English title; the body is the summary, as in English.
SEED_SPANISH: dict[str, dict[str, str]] = {
    "Detention is No Place for a Child": {
        "title": "La detención no es lugar para la infancia",
        "target": "El presidente Biden y su Administración",
        "call_to_action": "Firme la petición",
        "summary": (
            "El presidente Biden prometió poner fin a la detención de familias, pero en este momento su "
            "Administración considera volver a esta práctica cruel. Exigimos políticas que reconozcan la "
            "humanidad y la dignidad de la niñez inmigrante, y que garanticen que se la valore, no que se "
            "la persiga ni se la estigmatice."),
    },
    "Call on Mayor Adams to Follow the Law and Close Rikers Island": {
        "title": "Pídale al alcalde Adams que cumpla la ley y cierre Rikers Island",
        "target": "El alcalde Adams",
        "call_to_action": "Firme la petición",
        "summary": (
            "Rikers encarcela a cientos de personas jóvenes que, con frecuencia, están allí porque se han "
            "criminalizado sus problemas de salud mental. Súmese a nuestro llamado para que el alcalde Adams "
            "cierre Rikers Island, ayude a acabar con el camino que lleva del cuidado de crianza temporal a "
            "la prisión e invierta en los servicios preventivos que nuestras comunidades necesitan."),
    },
    "Stop Criminalizing Children, Invest In Their Healing": {
        "title": "Basta de criminalizar a la niñez: inviertan en su sanación",
        "call_to_action": "Firme la petición",
        "summary": (
            "En comunidades de todo el país, es la policía, y no personal de salud capacitado, quien "
            "responde primero ante una crisis de salud mental o social de una niña o un niño. Pida a sus "
            "representantes que pongan fin a los caminos hacia la prisión y financien servicios "
            "comunitarios que permitan a la juventud desarrollarse y sanar."),
    },
    "Sign the Healthy Kids Healthy Minds Pledge": {
        "title": "Firme el compromiso Healthy Kids Healthy Minds",
        "call_to_action": "Firme el compromiso",
        "summary": (
            "Le pedimos que asuma nuestro compromiso #HealthyKidsHealthyMinds para sacar a la luz las "
            "enfermedades mentales en la infancia. Al sumar su nombre, usted marcará la diferencia y "
            "ayudará a crear conciencia sobre esta crisis nacional."),
        "pledge_text": (
            "Asumo el compromiso #HealthyKidsHealthyMinds: ayudaré a sacar a la luz las enfermedades "
            "mentales en la infancia y a crear conciencia sobre esta crisis nacional."),
    },
    "Disrupt Institutional Racism in Child Welfare Systems": {
        "title": "Combata el racismo institucional en los sistemas de bienestar infantil",
        "call_to_action": "Firme el compromiso",
        "summary": (
            "Comprométase a ayudar a poner fin a la vigilancia, las investigaciones y las separaciones "
            "injustas, innecesarias y devastadoras que alejan a niñas y niños negros de sus familias. "
            "Sume su nombre."),
        "pledge_text": (
            "Me comprometo a ayudar a poner fin a la vigilancia, las investigaciones y las separaciones "
            "injustas, innecesarias y devastadoras que alejan a niñas y niños negros de sus familias."),
    },
    "We Need Laws and Policies that Celebrate and Empower LGBTQ+ Youth": {
        "title": "Necesitamos leyes y políticas que celebren y empoderen a la juventud LGBTQ+",
        "target": "Sus senadoras y senadores",
        "call_to_action": "Llame a sus senadores",
        "call_script": (
            "Hola, mi nombre es [su nombre] y vivo en [ciudad, estado]. Llamo para pedirle al senador o a "
            "la senadora que apoye la Ley de Igualdad (Equality Act). La juventud LGBTQ+ está "
            "sobrerrepresentada en los sistemas de bienestar infantil, donde corre más riesgo de sufrir "
            "acoso y abuso en el cuidado de crianza temporal, en la justicia juvenil y en los albergues "
            "para personas sin hogar. La Ley de Igualdad la protegería de la discriminación. ¿Votará a "
            "favor? Gracias por su tiempo."),
        "summary": (
            "La juventud LGBTQ+ está sobrerrepresentada en los sistemas de bienestar infantil, donde corre "
            "más riesgo de sufrir acoso y abuso en el cuidado de crianza temporal, en la justicia juvenil y "
            "en los albergues para personas sin hogar. Exija igualdad YA y pida a sus senadoras y senadores "
            "que aprueben la Ley de Igualdad (Equality Act)."),
    },
    "Fight Against Discrimination, Demand More Loving Homes for Children": {
        "title": "Luche contra la discriminación: exija más hogares llenos de amor para la niñez",
        "target": "El Congreso",
        "call_to_action": "Envíe la carta",
        "summary": (
            "Inste al Congreso a aprobar la Ley John Lewis Every Child Deserves a Family Act (ECDFA). Al "
            "prohibir la discriminación en el bienestar infantil, la ECDFA aumentaría el número de hogares "
            "de crianza temporal y adoptivos disponibles para la juventud, y le daría la mejor oportunidad "
            "posible de encontrar un hogar seguro, estable y lleno de amor."),
    },
}


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower().replace("+", " plus ")).strip("-")
    return slug[:120] or "action"


def seed_actions() -> tuple[int, int]:
    """Insert the missing seed actions; returns (added, already there).

    Never edits staff work: an action seeded before actions had a text of their own gets the
    seed's text, target and pledge only while its text is still empty, and its Spanish version
    only while it has none and its English title and summary are still the seed's. One seeded
    as a petition before the seed made it a letter or call becomes one only while untouched
    (still a petition, the seed's title and summary, nobody signed).
    """
    existing = {a.slug: a for a in db.session.scalars(sa.select(Action))}
    added = 0
    for position, (title, cta, summary) in enumerate(SEED_ACTIONS, start=1):
        slug = slugify(title)
        action = existing.get(slug)
        extra = SEED_KINDS.get(title)
        if action is None:
            action = Action(slug=slug, title=title, summary=summary, call_to_action=cta,
                            kind="pledge" if "Pledge" in cta else "petition",
                            position=position * 10, is_open=True)
            db.session.add(action)
            added += 1
            if extra:
                _make_kind(action, extra, cta)
        elif extra and _untouched_petition(action, title, summary):
            _make_kind(action, extra, cta)
            translations = dict(action.translations or {})
            version = translations.get("es")
            seed_es = SEED_SPANISH.get(title, {})
            if version and version.get("title") == seed_es.get("title"):  # still the seed's Spanish
                version = {**version, "call_to_action": seed_es["call_to_action"]}
                if seed_es.get("call_script"):
                    version["call_script"] = seed_es["call_script"]
                action.translations = {**translations, "es": version}
        # The Spanish text, while the action still says what the seed says in English.
        spanish = SEED_SPANISH.get(title)
        if (spanish and "es" in i18n.other_languages() and not has_version(action, "es")
                and action.title == title and (action.summary or summary) == summary):
            action.translations = {**(action.translations or {}),
                                   "es": {**spanish, "body": spanish["summary"]}}
        if action.body:
            continue
        action.body = summary
        action.target = action.target or SEED_TARGETS.get(title)
        action.pledge_text = action.pledge_text or SEED_PLEDGES.get(title)
    return added, len(SEED_ACTIONS) - added


def _untouched_petition(action: Action, title: str, summary: str) -> bool:
    """Still the petition the seed once made: its text, and no signatures to change the meaning of."""
    if action.kind != "petition" or action.title != title or (action.summary or summary) != summary:
        return False
    return db.session.scalar(sa.select(Signature.id).where(Signature.action_id == action.id).limit(1)) is None


def _make_kind(action: Action, extra: dict, cta: str) -> None:
    """Make a seed action the letter or call the seed says, with its placeholder targets."""
    for name in SEED_FIELDS:
        if name in extra:
            setattr(action, name, extra[name])
    action.call_to_action = cta
    db.session.flush()  # its id, for the targets
    if not targets_of(action.id):
        set_targets(action, parse_lines("\n".join(extra["targets"]), extra["kind"]))


class ActionError(ValueError):
    """A change that cannot be made as asked; the message says why (and to which field)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def open_actions() -> list[Action]:
    """What the Action Center shows, in its order."""
    query = sa.select(Action).where(Action.is_open.is_(True)).order_by(Action.position, Action.id)
    return list(db.session.scalars(query))


def ordered_actions() -> list[Action]:
    return list(db.session.scalars(sa.select(Action).order_by(Action.position, Action.id)))


def by_slug(slug: str) -> Action | None:
    return db.session.scalar(sa.select(Action).where(Action.slug == slug))


def action_link(action: Action) -> str:
    """Where an email's button for this action leads: its external URL, else its page here."""
    return action.url or external_url("public.action", slug=action.slug)


def _slug_owner(slug: str, exclude_id: int | None) -> Action | None:
    query = sa.select(Action).where(Action.slug == slug)
    if exclude_id is not None:
        query = query.where(Action.id != exclude_id)
    return db.session.scalar(query)


def _free_slug(base: str, exclude_id: int | None) -> str:
    slug, n = base, 1
    while _slug_owner(slug, exclude_id) is not None:
        n += 1
        suffix = f"-{n}"
        slug = base[: 120 - len(suffix)] + suffix
    return slug


def save(action: Action | None, *, title: str, slug: str | None, summary: str | None,
         call_to_action: str, kind: str, url: str | None, is_open: bool,
         body: str | None = None, target: str | None = None, pledge_text: str | None = None,
         goal: int | None = None, allow_comments: bool = False,
         requires_confirmation: bool = False, letter_subject: str | None = None,
         letter_text: str | None = None, call_script: str | None = None) -> Action:
    """Create or edit an action; raises ActionError(field, …) naming what cannot be saved (a
    slug taken, an unknown kind, a letter without its subject or text)."""
    if kind not in KINDS:
        raise ActionError("kind", f"“{kind}” is not a kind of action ({', '.join(KINDS)}).")
    letter_subject = " ".join((letter_subject or "").split()) or None
    letter_text = (letter_text or "").strip() or None
    if kind == "letter" and not letter_subject:
        raise ActionError("letter_subject", "A letter needs a subject.")
    if kind == "letter" and not letter_text:
        raise ActionError("letter_text", "A letter needs its text.")
    if letter_subject and len(letter_subject) > 200:
        raise ActionError("letter_subject", "The subject is longer than 200 characters.")
    if goal is not None and goal < 1:
        raise ActionError("goal", "The goal must be a whole number of signatures, 1 or more.")
    exclude = action.id if action else None
    slug = (slug or "").strip()
    if slug:
        owner = _slug_owner(slug, exclude)
        if owner is not None:
            raise ActionError("slug", f"The slug “{slug}” is already used by “{owner.title}”.")
    else:
        slug = _free_slug(slugify(title), exclude)
    if action is None:
        last = db.session.scalar(sa.select(sa.func.max(Action.position))) or 0
        action = Action(position=last + 10)
        db.session.add(action)
    action.slug = slug
    action.title = " ".join(title.split())
    action.summary = (summary or "").strip()
    action.call_to_action = " ".join(call_to_action.split())
    action.kind = kind
    action.url = (url or "").strip() or None
    action.is_open = bool(is_open)
    action.body = (body or "").strip()
    action.target = " ".join((target or "").split()) or None
    action.pledge_text = (pledge_text or "").strip() or None
    action.goal = goal
    action.allow_comments = bool(allow_comments)
    action.requires_confirmation = bool(requires_confirmation)
    action.letter_subject = letter_subject
    action.letter_text = letter_text
    action.call_script = (call_script or "").strip() or None
    return action


def set_open(slug: str, is_open: bool) -> Action | None:
    """Open or close an action by slug (the CLI's way); None when there is no such action."""
    action = by_slug(slug)
    if action is not None:
        action.is_open = is_open
    return action


def next_open_action(after: Action, skip_ids: frozenset[int] = frozenset()) -> Action | None:
    """The action to suggest once this one is signed: the next open one in Action Center order
    that is hosted here and not among `skip_ids`, wrapping round to the first."""
    items = [a for a in open_actions() if a.id != after.id and a.id not in skip_ids and not a.url]
    later = [a for a in items if (a.position, a.id) > (after.position, after.id)]
    return next(iter(later or items), None)


def move(action_id: int, direction: str) -> bool:
    """Swap with the neighbour ("up" or "down"), then renumber, so equal or gappy positions move.

    False when there is no such action.
    """
    items = ordered_actions()
    index = next((i for i, a in enumerate(items) if a.id == action_id), None)
    if index is None:
        return False
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(items):
        items[index], items[other] = items[other], items[index]
        for position, item in enumerate(items, start=1):
            item.position = position * 10
    return True
