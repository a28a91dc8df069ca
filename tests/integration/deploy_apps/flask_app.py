"""A Flask application with one SQLite connection per worker thread
(threading.local), opened on the thread's first request and kept.

DEPLOY_DB names the database file."""
import os
import sqlite3
import threading

from flask import Flask, jsonify

app = Flask(__name__)
_local = threading.local()
_lock = threading.Lock()
opened = []  # (thread, id(connection)) of every connection ever opened


def db():
    connection = getattr(_local, "connection", None)
    if connection is None:
        # check_same_thread (the default) makes sqlite3 refuse any use of
        # the connection from another thread.
        connection = sqlite3.connect(os.environ["DEPLOY_DB"], timeout=10)
        connection.execute("create table if not exists hits (thread integer, conn integer)")
        connection.commit()
        _local.connection = connection
        with _lock:
            opened.append((threading.get_ident(), id(connection)))
    return connection


@app.route("/conn")
def conn():
    connection = db()
    thread = threading.get_ident()
    connection.execute("insert into hits values (?, ?)", (thread, id(connection)))
    connection.commit()
    (count,) = connection.execute("select count(*) from hits").fetchone()
    return jsonify(thread=thread, conn=id(connection), hits=count)


@app.route("/opened")
def opened_connections():
    with _lock:
        return jsonify(opened=opened)
