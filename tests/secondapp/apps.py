from django.apps import AppConfig


class SecondAppConfig(AppConfig):
    name = "tests.secondapp"
    label = "secondapp"
    verbose_name = "A second app over the same CRM (tests)"
