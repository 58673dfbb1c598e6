"""Operator commands: `alerts dkim keygen`."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app

from ..mail.dkim import DkimConfigError, check_name, generate_rsa_key


@click.group("dkim")
def dkim_group() -> None:
    """DKIM keys for signing outgoing mail."""


def txt_chunks(value: str, size: int = 255) -> list[str]:
    """A DNS TXT string holds at most 255 characters; longer records are split into several."""
    return [value[i : i + size] for i in range(0, len(value), size)]


@dkim_group.command("keygen")
@click.option("--selector", required=True, help="The DKIM selector, e.g. alerts2026.")
@click.option("--domain", required=True, help="The signing domain (d=), normally MAIL_FROM's domain.")
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="Where to write the private key (default: instance/dkim-SELECTOR.DOMAIN.pem).")
@click.option("--bits", type=click.IntRange(1024, 4096), default=2048, show_default=True,
              help="RSA key size; 2048 is what mailbox providers expect.")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def keygen_command(selector: str, domain: str, out: str | None, bits: int, force: bool) -> None:
    """Make an RSA key pair: the private key to a file (mode 0600), the DNS TXT record to stdout."""
    selector = selector.strip().lower()
    domain = domain.strip().lower().rstrip(".")
    if not selector or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789-_." for c in selector):
        raise click.BadParameter("letters, digits, '-', '_' and '.' only", param_hint="--selector")
    try:
        check_name("the domain", domain)
    except DkimConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--domain") from exc
    path = Path(out) if out else Path(current_app.instance_path) / f"dkim-{selector}.{domain}.pem"
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists; choose another --out, or --force to replace it")
    if bits < 2048:
        click.echo("Warning: keys under 2048 bits are weak and some receivers ignore them.", err=True)
    pem, record = generate_rsa_key(bits)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)  # also when --force replaced a file with looser modes
        fh.write(pem)
    name = f"{selector}._domainkey.{domain}"
    quoted = " ".join(f'"{part}"' for part in txt_chunks(record))
    click.echo(f"Private key written to {path} (mode 0600). Keep it secret; configure:")
    click.echo(f"  DKIM_DOMAIN={domain}")
    click.echo(f"  DKIM_SELECTOR={selector}")
    click.echo(f"  DKIM_PRIVATE_KEY_FILE={path.resolve()}")
    click.echo("Publish this DNS TXT record:")
    click.echo(f"  name:  {name}")
    click.echo(f"  value: {record}")
    click.echo("As a zone file line (the value split into strings of at most 255 characters):")
    click.echo(f"  {name}. 3600 IN TXT ( {quoted} )")
