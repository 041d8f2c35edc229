"""Runs the real REST layer of z/VM Cloud Connector 1.6.3 (`zvmsdk.sdkwsgi` from the PyPI package
`zVMCloudConnector`) over HTTP, with its backend calls going to a socket-protocol server given
on the command line — Drover's `--zvm-socket-listen`. The differential tests send the same
requests to it and to Drover's own REST layer and compare the answers.

    python zvm_reference.py --port P --backend-port S [--file-repository DIR]
"""

import argparse
import wsgiref.simple_server

from zvmsdk import config

CONF = config.CONF


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--backend-port", type=int, required=True)
    p.add_argument("--file-repository", default="/tmp/zvm-reference-files")
    a = p.parse_args()
    CONF.sdkserver.bind_addr = "127.0.0.1"
    CONF.sdkserver.bind_port = a.backend_port
    CONF.file.file_repository = a.file_repository
    CONF.wsgi.auth = "none"
    from zvmsdk.sdkwsgi import deploy

    app = deploy.loadapp()
    srv = wsgiref.simple_server.make_server("127.0.0.1", a.port, app, handler_class=QuietHandler)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
