"""Keep-alive HTTP connections (http.client) to a local http.server, pooled.

    python examples/http_keepalive.py

Each pooled HTTPConnection keeps its TCP connection open between requests,
so 200 requests from 8 threads open only as many connections as the pool
holds.  The server closes a connection idle for 2 s; max_idle=1 makes the
pool drop such a connection before the server does, instead of handing it out.
"""
import http.client
import http.server
import threading
import time

from pool_ext import ObjectPool


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"    # keep-alive
    timeout = 2                      # the server closes connections idle 2 s
    peers = set()

    def do_GET(self):
        Handler.peers.add(self.client_address)
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
host, port = server.server_address

pool = ObjectPool(lambda: http.client.HTTPConnection(host, port, timeout=5),
                  capacity=4, max_idle=1.0,
                  destroy=lambda conn: conn.close(), name="http")


def get(path):
    conn = pool.acquire(timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()          # read it all: the connection is reusable
    except BaseException:
        pool.discard(conn)              # its state is unknown: not reused
        raise
    pool.release(conn)
    return response.status, body


def work():
    for n in range(25):
        assert get(f"/item/{n}") == (200, b"hello\n")


threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("requests: 200, TCP connections:", len(Handler.peers))

time.sleep(2.5)                        # the server has closed the idle connections...
print("after a pause:", get("/again"))  # ...and the pool made a new one
print("connections dropped for idling too long:", pool.stats()["expired"])
pool.close()
server.shutdown()
