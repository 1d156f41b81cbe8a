"""
WSGI config for the dragoman demo project.

It exposes the WSGI callable as a module-level variable named ``application``;
dragoman (or any WSGI server) loads it via ``module = mysite.wsgi:application``.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()
