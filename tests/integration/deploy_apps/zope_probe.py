"""A PasteDeploy filter for a Zope instance (in zope.ini's pipeline):
records, for every request Zope publishes, the worker thread, the ZODB
connection the request used (the root object's _p_jar) and the thread's
transaction manager; GET /__probe__ returns the records as JSON.

It subscribes to ZPublisher's IPubAfterTraversal event (the request has
traversed from the ZODB root then), registered in code, so no ZCML and no
product is needed. ?probe_sleep=S keeps the request (and its ZODB
connection) busy for S seconds. A form field probe_conflict (e.g. in a POST
body) makes the first attempt of the request fail with a ConflictError, as
a concurrent write would, so that Zope retries it.
"""
import json
import threading
import time
from urllib.parse import parse_qs

_lock = threading.Lock()
records = []


def after_traversal(event):
    import transaction
    request = event.request
    root = request["PARENTS"][-1]
    jar = root._p_jar
    with _lock:
        records.append({
            "thread": threading.get_ident(),
            "thread_name": threading.current_thread().name,
            "conn": id(jar),
            "txn_manager": id(transaction.manager.manager),
            "db_pool_size": jar.db().getPoolSize(),
            "path": request.get("PATH_INFO"),
            "retry_count": request.retry_count,
            "form": {k: v for k, v in request.form.items() if k.startswith("probe_")},
        })
    if "probe_conflict" in request.form and request.retry_count == 0:
        from ZODB.POSException import ConflictError
        raise ConflictError("provoked by zope_probe")
    sleep = parse_qs(request.environ.get("QUERY_STRING", "")).get("probe_sleep")
    if sleep:
        time.sleep(float(sleep[0]))


def make_filter(global_conf, **local_conf):
    """paste.filter_factory: ``use = call:zope_probe:make_filter``."""
    from zope.component import provideHandler
    from ZPublisher.interfaces import IPubAfterTraversal
    provideHandler(after_traversal, (IPubAfterTraversal,))
    return lambda app: _probe_app(app)


def _probe_app(app):
    def probe(environ, start_response):
        if environ.get("PATH_INFO") == "/__probe__":
            with _lock:
                body = json.dumps({"records": records}).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return probe
