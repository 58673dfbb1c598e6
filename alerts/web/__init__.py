"""The web side: the public pages, the subscriber's privacy pages, the staff blueprint, error pages."""
