"""Outgoing mail: rendering, MIME, DKIM, SMTP and the signed ids a message carries; knows no subscriber."""
