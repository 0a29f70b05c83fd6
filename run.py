"""Development entry point.

``python run.py`` serves the portal (``CASHBACK_HOST``/``CASHBACK_PORT``, default
127.0.0.1:5000); ``flask --app run …`` and ``cashback …`` give the CLI.
"""
from portal.app import create_app

app = create_app()

if __name__ == "__main__":
    # the configuration checked these (the built-in secrets are refused off loopback)
    host, port = app.config["BIND_HOST"], app.config["BIND_PORT"]
    print(f" * Cashback back-office: http://{host}:{port}/", flush=True)
    app.run(host=host, port=port, debug=False, threaded=True)
