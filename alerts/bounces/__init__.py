"""Bounces and complaints: `parsing` reads a report (pure), `processing` finds whom it is about
and acts; `server` (SMTP) and `poller` (IMAP) are the two ways reports arrive."""
