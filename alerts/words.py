"""How names and counts read inside a sentence: one home for the pages', emails' and commands' words."""

from __future__ import annotations

import re

# A first word that is capitalised only because it starts a name's own line ("Your senators").
_LEADING = re.compile(r"^(Your|Our|The|All|Every|Each|My)\b")
# A title that is itself a call to action ("Sign the Healthy Kids Healthy Minds Pledge",
# "Firme la petición por escuelas seguras").
_IMPERATIVE = re.compile(r"^(?:Sign|Take|Join|Make)\s+(?=(?:the|our|this|a)\s)"
                         r"|^(?:Firme|Firma|Firmen)\s+(?=(?:la|el|los|las|nuestra|nuestro|esta|este|una|un)\s)",
                         re.I)


def plural(count: int, one: str, many: str | None = None) -> str:
    """“1 subscriber”, “12,408 subscribers”: never “subscriber(s)”."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def in_sentence(name: str | None) -> str:
    """A name as it reads mid-sentence: “deliver to your senators”, but “to Mayor Adams”."""
    name = (name or "").strip()
    return _LEADING.sub(lambda m: m.group(1).lower(), name, count=1)


def action_name(title: str | None) -> str:
    """An action's title as the thing signed: “Your name is on the Healthy Kids Healthy Minds
    Pledge”, not “on Sign the Healthy Kids Healthy Minds Pledge”."""
    title = (title or "").strip()
    rest = _IMPERATIVE.sub("", title, count=1)
    return in_sentence(rest) if rest != title else title
