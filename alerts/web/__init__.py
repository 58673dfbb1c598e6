"""The web side: the public pages, the subscriber's privacy pages, the staff pages, error pages.

Each side's blueprint.py holds its blueprints and their route tables; the view modules import
no blueprint (an import-linter contract keeps it so).
"""
