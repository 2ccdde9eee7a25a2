import os

from django.core.asgi import get_asgi_application

from cot_project.apps import dev_only_secrets_refuse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cot_project.settings")
application = get_asgi_application()
# With DEBUG off the server does not start on a DEV-ONLY secret.
dev_only_secrets_refuse()
