"""Creates the Plone site for `make bench-zope`, run through Zope's app object:

    bin/zconsole run etc/zope.conf tests/bench/zope_site.py

A Plone 6 site "Plone" (classic UI, default content, plone.restapi) with a
published folder "bench-folder" of 50 published documents. Needs no network.
"""
import sys

import transaction
from AccessControl.SecurityManagement import newSecurityManager
from Products.CMFPlone.factory import addPloneSite
from Testing.makerequest import makerequest
from zope.component.hooks import setSite

SITE_ID = "Plone"
FOLDER_ID = "bench-folder"
DOCUMENTS = 50


def main(app):
    app = makerequest(app)
    if SITE_ID in app.objectIds():
        print("site %s exists" % SITE_ID)
        return
    admin = app.acl_users.getUserById("admin")
    newSecurityManager(None, admin.__of__(app.acl_users))
    site = addPloneSite(app, SITE_ID, title="Plone benchmark site",
                        extension_ids=["plone.app.contenttypes:default",
                                       "plone.restapi:default"],
                        setup_content=True)
    setSite(site)
    from plone import api

    folder = api.content.create(container=site, type="Folder", id=FOLDER_ID,
                                title="Bench folder")
    api.content.transition(obj=folder, transition="publish")
    for i in range(1, DOCUMENTS + 1):
        doc = api.content.create(container=folder, type="Document", id="doc-%d" % i,
                                 title="Document %d" % i,
                                 description="Description of document %d" % i)
        api.content.transition(obj=doc, transition="publish")
    transaction.commit()
    print("created /%s with /%s/%s holding %d documents" % (SITE_ID, SITE_ID, FOLDER_ID,
                                                            DOCUMENTS))


main(globals()["app"])
sys.stdout.flush()
