"""The trainer service: a Celery worker on the `training` queue."""
