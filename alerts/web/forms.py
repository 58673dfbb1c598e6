"""Forms shared by public and staff pages."""

from __future__ import annotations

from flask_wtf import FlaskForm


class ButtonForm(FlaskForm):
    """Only the CSRF token: the button is the whole form (erase, confirm a step)."""
