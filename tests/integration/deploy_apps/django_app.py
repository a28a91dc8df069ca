"""A one-module Django project on SQLite with persistent connections
(CONN_MAX_AGE=None): Django keeps one connection per thread.

DEPLOY_DB names the database file."""
import os
import threading

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="deploy-test-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                           "NAME": os.environ["DEPLOY_DB"],
                           "CONN_MAX_AGE": None,
                           "OPTIONS": {"timeout": 10}}},
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def conn(request):
    with connection.cursor() as cursor:
        cursor.execute("create table if not exists hits (thread integer, conn integer)")
        cursor.execute("insert into hits values (%s, %s)",
                       [threading.get_ident(), id(connection.connection)])
        cursor.execute("select count(*) from hits")
        (count,) = cursor.fetchone()
    return JsonResponse({
        "thread": threading.get_ident(),
        "wrapper": id(connections["default"]),  # the per-thread DatabaseWrapper
        "conn": id(connection.connection),  # the sqlite3 connection inside it
        "hits": count,
        "scheme": request.scheme,
        "host": request.get_host(),
    })


urlpatterns = [path("conn", conn)]
application = get_wsgi_application()
