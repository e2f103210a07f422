"""The hello-world litserve server with one no-op callback: what callbacks cost on the request path."""

from __future__ import annotations

import argparse

from litserve_hello import HelloAPI

import litserve as ls


def main() -> None:
    """Parse ``--port`` and serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    server = ls.LitServer(HelloAPI(), accelerator="cpu", workers_per_device=1, timeout=30, callbacks=[ls.Callback()])
    server.run(host=args.host, port=args.port, log_level=args.log_level, generate_client_file=False)


if __name__ == "__main__":
    main()
