"""The project: settings, URLs, the Celery app and its plumbing.

The Celery app is loaded with Django (`cot_project.apps`), not when this package is
imported: the Celery plumbing beside it (`kombu_redis`, `celery_results`) must be
importable without Django, by the benchmark's `floor` app.
"""
