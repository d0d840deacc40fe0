"""The remote side of django-cdms: a Dataverse Web API client and a local simulator of it."""
