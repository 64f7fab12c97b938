"""The report a person reads: one HTML page and its Markdown twin, rendered from Jinja templates."""
