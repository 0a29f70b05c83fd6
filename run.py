"""Development entry point.

``python run.py`` serves the portal (``CASHBACK_HOST``/``CASHBACK_PORT``, default
127.0.0.1:5000); ``flask --app run …`` and ``cashback …`` give the CLI.
"""
import os

from portal.app import create_app

app = create_app()

if __name__ == "__main__":
    host = os.environ.get("CASHBACK_HOST", "127.0.0.1")
    port = int(os.environ.get("CASHBACK_PORT", "5000"))
    print(f" * Cashback back-office: http://{host}:{port}/", flush=True)
    app.run(host=host, port=port, debug=False, threaded=True)
