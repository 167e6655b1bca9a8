"""python -m examples.myum write-metadata FILE | serve [--host H] [--port P]"""

from __future__ import annotations

import argparse
import sys

from examples.myum.app import create_app, sp_metadata


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.myum")
    sub = parser.add_subparsers(dest="command", required=True)
    meta = sub.add_parser("write-metadata", help="write myUM's SP metadata to FILE")
    meta.add_argument("file")
    serve = sub.add_parser("serve", help="run myUM")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    if args.command == "write-metadata":
        with open(args.file, "w") as fh:
            fh.write(sp_metadata())
        return 0
    from waitress import serve as waitress_serve

    print(f"myUM on http://{args.host}:{args.port}/", file=sys.stderr)
    waitress_serve(create_app(), host=args.host, port=args.port, ident="myum")
    return 0


if __name__ == "__main__":
    sys.exit(main())
