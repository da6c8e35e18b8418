"""The status page, its JSON API, /healthz and /metrics: state and routes in Python, the page as static files."""
