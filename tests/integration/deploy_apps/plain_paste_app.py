"""A plain PasteDeploy application (no framework): [app:main]
use = call:plain_paste_app:make_app."""
import json
import threading


def make_app(global_conf, **settings):
    greeting = settings.get("greeting", "hello")

    def application(environ, start_response):
        body = json.dumps({
            "greeting": greeting,
            "thread": threading.get_ident(),
            "here": global_conf.get("here"),
            "server": [environ["SERVER_NAME"], environ["SERVER_PORT"]],
            "multithread": environ["wsgi.multithread"],
        }).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return application
