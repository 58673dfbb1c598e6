"""Staff pages (behind login): one blueprint, a module per area.

blueprint.py holds the blueprint, the gate in front of every staff page (login required,
security headers) and the route table, so no staff route can be added without the gate;
the view modules import no blueprint.
"""
