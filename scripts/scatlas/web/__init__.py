"""scatlas serve: the web page of a release (Flask app, background jobs, views)."""
