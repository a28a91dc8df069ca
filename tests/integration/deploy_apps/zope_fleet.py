"""The ZODB content of the Zope fleet test (test_fleet.py): one persistent
FleetCounter at /fleet, shared by every Zope instance through ZEO.

- GET /fleet: reads the ZODB (the counter, the number of writes, a slice of
  the item listing) and answers which instance served it.
- POST /fleet/increment (form field write_id): one write. The counter is a
  BTrees.Length (conflict resolution in the ZEO server), and each write id
  is recorded with how often it was applied, so that the test can tell a
  lost write, a write applied twice and a write applied without a 200 apart.
  Concurrent writes that still conflict are retried by Zope's publisher as a
  whole (the transaction is aborted first), so a retried attempt applies
  nothing twice.
- GET /fleet/work: about 10 ms of ZODB reads and CPU (the benchmark's
  thread-bound page); answers the CPU time it used.

make_filter: a PasteDeploy filter in front of Zope for requests that must be
in flight when the test stops an instance: ?mark=NAME writes the number of
the instance ($FLEET_INSTANCE) to the file NAME in $FLEET_MARK_DIR once the
request has reached the application; ?sleep=S then holds it S seconds
(at most 60), or with ?gate=NAME until the file NAME appears in
$FLEET_MARK_DIR (the test opens the gate once it has stopped or killed the
instance: a fixed sleep could end before the test acts), before Zope
publishes it (before its transaction begins, so that the held request
conflicts with no concurrent write).

setup(app) creates /fleet; run it once against the ZEO server with
`zconsole run zope.conf script` (see test_fleet.py). The class must be
importable by every instance (PYTHONPATH) and, for conflict resolution, the
ZEO server needs BTrees only.
"""
import os
import time
from urllib.parse import parse_qs

from AccessControl.class_init import InitializeClass
from AccessControl.SecurityInfo import ClassSecurityInfo
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from OFS.SimpleItem import SimpleItem
from zExceptions import BadRequest, MethodNotAllowed

ITEMS = 2000
WORK_ROUNDS = 36  # full passes over the items in GET /fleet/work (~10 ms of CPU here)


class FleetCounter(SimpleItem):
    meta_type = "Fleet counter"
    security = ClassSecurityInfo()
    security.declareObjectPublic()

    def __init__(self, id):
        self.id = id
        self.count = Length()
        self.writes = OOBTree()  # write id -> times applied
        self.items = OOBTree()
        for i in range(ITEMS):
            self.items["item-%05d" % i] = "value of item %d" % i

    def _answer(self, REQUEST, body):
        response = REQUEST.RESPONSE
        response.setHeader("Content-Type", "text/plain; charset=utf-8")
        response.setHeader("X-Fleet-Instance", os.environ.get("FLEET_INSTANCE", "?"))
        return body

    @security.public
    def index_html(self, REQUEST):
        """The counter, the number of distinct writes and a listing slice."""
        listing = " ".join(k for k in self.items.keys(max="item-00009"))
        return self._answer(REQUEST, "count=%d writes=%d items=%d first=%s\n"
                            % (self.count(), len(self.writes), len(self.items), listing))

    @security.public
    def increment(self, REQUEST):
        """Applies the write named by the form field write_id (POST only)."""
        if REQUEST.get("REQUEST_METHOD") != "POST":
            raise MethodNotAllowed("POST only")
        write_id = REQUEST.form.get("write_id")
        if not write_id:
            raise BadRequest("write_id missing")
        self.count.change(1)
        self.writes[write_id] = self.writes.get(write_id, 0) + 1
        return self._answer(REQUEST, "applied %s\n" % write_id)

    @security.public
    def report(self, REQUEST):
        """count, then one line per write id: id and times applied."""
        lines = ["count %d" % self.count()]
        lines.extend("%s %d" % item for item in self.writes.items())
        return self._answer(REQUEST, "\n".join(lines) + "\n")

    @security.public
    def work(self, REQUEST):
        """About 10 ms of reads and hashing; answers the CPU seconds used."""
        started = time.thread_time()
        digest = 0
        for _round in range(WORK_ROUNDS):
            for key, value in self.items.items():
                digest ^= hash((key, value, _round))
        used = time.thread_time() - started
        return self._answer(REQUEST, "cpu=%.6f digest=%d\n" % (used, digest & 0xFFFF))


InitializeClass(FleetCounter)


def make_filter(global_conf, **local_conf):
    """paste.filter_factory: ``use = call:zope_fleet:make_filter``."""
    return _hold


def _hold(app):
    def hold(environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        mark = query.get("mark", [""])[0]
        if mark and os.environ.get("FLEET_MARK_DIR"):
            path = os.path.join(os.environ["FLEET_MARK_DIR"], os.path.basename(mark))
            with open(path + ".tmp", "w") as f:
                f.write(os.environ.get("FLEET_INSTANCE", "?"))
            os.replace(path + ".tmp", path)
        if query.get("sleep"):
            _wait(min(float(query["sleep"][0]), 60.0), query.get("gate", [""])[0])
        return app(environ, start_response)

    return hold


def _wait(seconds, gate):
    """Sleeps `seconds`, or less if the gate file opens first."""
    deadline = time.monotonic() + seconds
    gate_path = os.path.join(os.environ.get("FLEET_MARK_DIR", ""), os.path.basename(gate))
    while time.monotonic() < deadline:
        if gate and os.path.exists(gate_path):
            return
        time.sleep(0.02)


def setup(app):
    """Creates /fleet unless it exists, and commits."""
    import transaction
    if "fleet" not in app.objectIds():
        app._setObject("fleet", FleetCounter("fleet"))
        transaction.commit()
    print("fleet ready: count=%d" % app.fleet.count())
