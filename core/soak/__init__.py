"""The fault soak (``make soak``; ``manage.py soak``): mixed ORM work under injected faults,
then checks that nothing was lost, duplicated or left out of step (``core.soak.run``)."""
