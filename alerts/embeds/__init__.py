"""Forms placed on other websites: source codes, allowed origins, form tokens and proof of work.

Nothing here touches the database: the views record signups and signatures as the site's own
forms do, after these checks pass.
"""
