"""The Zope application of BENCH_ZOPE_INI, for servers without a PasteDeploy
runner (granian): logging and app loaded as Zope's runwsgi loads them."""
import os

from paste.deploy import loadapp
from Zope2.Startup.serve import setup_logging

INI = os.environ["BENCH_ZOPE_INI"]

setup_logging(INI)
application = loadapp("config:" + INI)
