"""Celery plumbing: the app (broker, result backend, safety settings) and the task names."""
