"""gunicorn settings for the API server: `gunicorn -c cot_project/gunicorn_conf.py
cot_project.wsgi` (the Procfile and the end-to-end tests start it so).

- A worker that exits (restart, crash, `--max-requests`) is marked dead in the
  Prometheus multiprocess directory, so its live gauges stop counting; its counters stay.
- gunicorn's own lines go through the same logging as Django's (JSON in production). Its
  access log stays off: `core.middleware.RequestContextMiddleware` writes one line per
  request, with the request id and the order.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

# gunicorn reads this file before it puts the project on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.metrics import process_mark_dead

logconfig_dict = importlib.import_module(
    os.environ.get("DJANGO_SETTINGS_MODULE", "cot_project.settings")
).LOGGING


def child_exit(server: Any, worker: Any) -> None:
    process_mark_dead(worker.pid)
