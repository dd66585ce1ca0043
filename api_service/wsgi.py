"""WSGI entry point for gunicorn: `gunicorn -c api_service/gunicorn.conf.py api_service.wsgi:app`
(and `make api-dev`'s `flask --app api_service.wsgi run`)."""

from api_service import create_app, warn_if_read_only

app = create_app()
warn_if_read_only(app)
