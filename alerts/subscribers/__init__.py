"""Subscribers: double opt-in, their tokens, confirmation emails, import and export, their own data."""
