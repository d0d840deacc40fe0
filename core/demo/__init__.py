"""``manage.py demo``: the project's main job end to end, on embedded defaults."""
