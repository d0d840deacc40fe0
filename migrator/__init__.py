"""The Django side of django-cdms: models synced through to the remote CRM."""
