#!/usr/bin/env python3
"""A stand-in for the Kubernetes API server, for bench/abuse.sh SOURCE=kube.

    bench/fake-apiserver.py PORT CERT KEY LEASE_DIR

Serves HTTPS/1.1 keep-alive on 127.0.0.1:PORT: GET .../namespaces/NS/leases/NAME
answers LEASE_DIR/NS/NAME.json (404 if absent); POST and PATCH (Events) are
answered 201 with the body they sent; anything else 404. No authentication:
it exists to put the webhook in its production threading (a thread per
connection with a kube Lease source), not to test the client.
"""
import http.server
import os
import re
import ssl
import sys

port, cert, key, lease_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
LEASE = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases/([^/?]+)")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        m = LEASE.match(self.path)
        path = m and os.path.join(lease_dir, m.group(1), m.group(2) + ".json")
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                self.reply(200, f.read())
        else:
            self.reply(404, b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.reply(201, self.rfile.read(n) or b"{}")

    do_PATCH = do_POST

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
