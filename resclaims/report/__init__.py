"""The report: the session's claims, runs, timings and provenance as JSON, Markdown, HTML and figures; the
comparison with a baseline; the claims catalogue; the validation table of the procedures."""
