"""The web UI and JSON API (FastAPI + Jinja2, server-rendered): `create_app` builds the ASGI app."""

from monitor.web.app import create_app

__all__ = ["create_app"]
