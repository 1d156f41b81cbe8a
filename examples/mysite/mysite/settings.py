"""
Django settings for the dragoman demo project.

Deliberately small, but a real project: sqlite database, the admin, sessions,
messages, static files and uploaded media. Several values can be overridden
from the environment so tests can run against temporary locations:

    DJANGO_SECRET_KEY   secret key (a fixed demo value is used otherwise)
    DJANGO_DEBUG        "1" enables DEBUG (default: off)
    DJANGO_DB_PATH      path of the sqlite database file
    DJANGO_STATIC_ROOT  where ``collectstatic`` puts files
    DJANGO_MEDIA_ROOT   where uploads and generated downloads are stored

The release being served is the first line of a ``REVISION`` file next to manage.py, as a
deployment tool writes it (Capistrano does); ``/api/`` answers it, so a rolling deployment can
be watched from outside (tests/fleet). Without the file it is ``dev``.
"""

import os
from pathlib import Path

# Directory containing manage.py.
BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    "django-insecure-dragoman-demo-not-secret-8f3c2a91e7b64d05a1c9",
)

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"

ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mysite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "mysite.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH") or BASE_DIR / "db.sqlite3",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Static files (served by dragoman via ``static-map = /static=...staticfiles``
# after ``manage.py collectstatic``). Default, non-manifest storage.
STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles"

# Uploaded / generated files (served via ``static-map = /media=...media``).
MEDIA_URL = "/media/"
MEDIA_ROOT = os.environ.get("DJANGO_MEDIA_ROOT") or BASE_DIR / "media"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Read once, when the application is loaded: a worker serves the release it started with, and a
# reload (SIGHUP) brings the new one.
try:
    RELEASE = (BASE_DIR / "REVISION").read_text().strip().splitlines()[0]
except (OSError, IndexError):
    RELEASE = "dev"

# Send request errors (500 tracebacks) to stderr so they appear in the
# server's log, whatever DEBUG is.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "simple": {"format": "[django] {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "simple",
        },
    },
    "loggers": {
        "django.request": {
            "handlers": ["console"],
            "level": "ERROR",
            "propagate": False,
        },
    },
}
