"""WSGI entry point for gunicorn."""

from graphql_service import create_app

app = create_app()
