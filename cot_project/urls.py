from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.api import healthz, metrics, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("orders.urls")),
    path("api/v1/", include("prescriptions.urls")),
    path("api/v1/", include("inventory.urls")),
    path("api/v1/", include("payments.urls")),
    path("api/v1/", include("logistics.urls")),
    path("api/v1/", include("notifications.urls")),
    path("api/v1/", include("forecasting.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Its script is a separate request: the Content-Security-Policy allows no inline script.
    # Swagger UI's start-up script is a request of its own: the Content-Security-Policy
    # allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    # Ours, not django_prometheus.urls: it adds the scrape-time collectors (core.metrics).
    path("metrics", metrics, name="metrics"),
]

handler400 = "core.errors.bad_request_view"
handler403 = "core.errors.permission_denied_view"
handler404 = "core.errors.not_found_view"
handler500 = "core.errors.server_error_view"
