from django.db import models


class Channel(models.TextChoices):
    WEB = "web", "Web"
    MOBILE = "mobile", "Mobile app"
    PARTNER_STORE = "partner_store", "Partner store"
