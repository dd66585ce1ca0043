"""WSGI entry point for gunicorn: `gunicorn -c api_service/gunicorn.conf.py api_service.wsgi:app`."""

from api_service import create_app

app = create_app()
