import os

from django.core.wsgi import get_wsgi_application

from cot_project.apps import dev_only_secrets_refuse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cot_project.settings")
application = get_wsgi_application()
# With DEBUG off the server does not start on a DEV-ONLY secret.
dev_only_secrets_refuse()
