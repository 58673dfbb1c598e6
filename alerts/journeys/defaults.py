"""The default series' emails after the welcome: real text, in English and Spanish, that staff edit."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StepText:
    after_minutes: int
    subject: str
    preheader: str
    body: str
    actions: int = 0  # how many of the open actions it links (0: all)
    unless_signed_first: bool = False  # skipped for those who signed the first open action
    translations: dict[str, dict[str, str]] = field(default_factory=dict)


STEPS = (
    StepText(
        after_minutes=2 * 24 * 60,
        subject="Here is what we do, {first_name|friend}",
        preheader="How a few minutes of your time change decisions about children",
        body=(
            "Hello {first_name|friend},\n\n"
            "We are a small team that speaks up for children where decisions about them are made: "
            "city councils, school boards, parliaments, the companies whose products children use.\n\n"
            "**How it works:** when a decision is close, we email you one short action. You sign, "
            "pledge or call, and we bring every voice to the people deciding, with the numbers that "
            "make them listen. We never share your address, and we write only when it matters.\n\n"
            "These actions are open right now. Each one takes about two minutes:"
        ),
        translations={"es": {
            "subject": "Esto es lo que hacemos por la niñez",
            "preheader": "Cómo unos minutos de su tiempo cambian las decisiones sobre la niñez",
            "intro_md": (
                "¡Hola!\n\n"
                "Somos un equipo pequeño que alza la voz por niñas y niños donde se decide sobre "
                "sus vidas: concejos municipales, juntas escolares, parlamentos y las empresas cuyos "
                "productos usan.\n\n"
                "**Cómo funciona:** cuando se acerca una decisión, le enviamos una acción breve. "
                "Usted firma, se compromete o llama, y llevamos cada voz a quienes deciden, con las "
                "cifras que les hacen escuchar. Nunca compartimos su dirección y solo escribimos "
                "cuando importa.\n\n"
                "Estas acciones están abiertas ahora. Cada una toma unos dos minutos:"
            ),
        }},
    ),
    StepText(
        after_minutes=5 * 24 * 60,
        subject="Pick one action for children this week",
        preheader="Two minutes, one signature: the first step counts the most",
        body=(
            "Hello {first_name|friend},\n\n"
            "A week ago you joined thousands of people who stand up for children. The people who "
            "change the most decisions are not the ones who do everything: they are the ones who "
            "take the first step.\n\n"
            "So here is one. Add your name below: it takes two minutes, and we will tell you what "
            "it changed."
        ),
        actions=1,
        unless_signed_first=True,
        translations={"es": {
            "subject": "Elija una acción por la niñez esta semana",
            "preheader": "Dos minutos, una firma: el primer paso es el que más cuenta",
            "intro_md": (
                "¡Hola!\n\n"
                "Hace una semana se unió a miles de personas que defienden a niñas y niños. Quienes "
                "más decisiones cambian no son quienes lo hacen todo: son quienes dan el primer "
                "paso.\n\n"
                "Aquí tiene uno. Añada su nombre abajo: toma dos minutos y le contaremos lo que "
                "logró."
            ),
        }},
    ),
)
