"""A Pyramid application for pserve: [app:main] use = call:pyramid_app:main."""
import threading

from pyramid.config import Configurator


def hello(request):
    return {
        "greeting": request.registry.settings.get("greeting"),
        "thread": threading.get_ident(),
        "path": request.path,
        "url": request.route_url("hello", name="x"),
        "server": [request.environ["SERVER_NAME"], request.environ["SERVER_PORT"]],
    }


def echo(request):
    return {"length": len(request.body), "method": request.method,
            "json": request.json_body if request.body else None}


def main(global_config, **settings):
    with Configurator(settings=settings) as config:
        config.add_route("hello", "/hello/{name}")
        config.add_view(hello, route_name="hello", renderer="json")
        config.add_route("echo", "/echo")
        config.add_view(echo, route_name="echo", renderer="json", request_method="POST")
        return config.make_wsgi_app()
