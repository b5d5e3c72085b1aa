"""One sqlite3 database, four connections, eight threads.

    python examples/sqlite_threads.py

A pooled object moves between threads: the thread that releases a
connection is rarely the one that acquires it next.  sqlite3 refuses that
unless the connection is made with check_same_thread=False; the pool still
gives each connection to one thread at a time.
"""
import os
import sqlite3
import tempfile
import threading

from pool_ext import ObjectPool

path = os.path.join(tempfile.mkdtemp(), "example.db")


def connect():
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10)
    conn.execute("pragma journal_mode=wal")   # readers do not block the writer
    return conn


pool = ObjectPool(connect, capacity=4,
                  reset=lambda conn: conn.rollback(),   # on release
                  destroy=lambda conn: conn.close(), name="sqlite")

with pool.lease() as conn:
    conn.execute("create table counts (thread integer, n integer)")
    conn.commit()


def work(thread):
    for n in range(100):
        with pool.lease() as conn:
            conn.execute("insert into counts values (?, ?)", (thread, n))
            conn.commit()


threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()

with pool.lease() as conn:
    print("rows:", conn.execute("select count(*) from counts").fetchone()[0])
print("connections:", pool.stats()["creations"], "for", len(threads), "threads")
pool.close()
