"""The production start (`make serve`): nginx in front of gunicorn. See serve.py."""
