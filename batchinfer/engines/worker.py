"""Entry point of one embedded-engine worker process (started by batchinfer/engines/local.py)."""

if __name__ == "__main__":
    import sys

    from batchinfer.engines.local import serve

    serve(sys.argv[1:])
