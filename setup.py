"""Cashback back-office: install with ``pip install -e .[test]``."""
from setuptools import find_packages, setup

setup(
    name="cashback-backoffice",
    version="0.1.0",
    description="Back-office for a cashback service on an affiliate network: ledger, payouts, support desks.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["portal", "portal.*", "plugins", "plugins.*",
                                    "payment_providers", "payment_providers.*"]),
    py_modules=["config", "run"],
    include_package_data=True,
    package_data={"portal": ["translations/*/LC_MESSAGES/*.mo", "translations/*/LC_MESSAGES/*.po",
                             "templates/**/*.html", "static/**/*"]},
    install_requires=[
        "Flask-AppBuilder>=5.3,<6",
        "Flask>=3.1,<4",
        "SQLAlchemy>=2.0,<2.2",
        "Flask-SQLAlchemy>=3.1,<3.2",
        "Flask-Migrate>=4.0,<5",
        "alembic>=1.13,<2",
        "WTForms>=3.1,<4",
        "Flask-WTF>=1.2,<2",
        "Flask-Babel>=4,<5",
        "Babel>=2.14,<3",
        # FAB 5.3's REST schemas break under marshmallow 4.
        "marshmallow>=3.20,<4",
        "marshmallow-sqlalchemy>=1.0,<1.5",
        "pluggy>=1.5,<2",
        # rq 2.x: Job/Queue/Worker API we build against; 3.0 changed defaults.
        "rq>=2.6,<3",
        "redis>=5,<9",
        "requests>=2.31,<3",
        "psycopg[binary]>=3.1,<4",
        "click>=8.1,<9",
        # phone numbers (E.164, Russian mobile ranges) for the phone top-up providers
        "phonenumbers>=8.13,<10",
        # the production WSGI server (and the postback bench's)
        "gunicorn>=22,<24",
        # /metrics (Prometheus text format; multiprocess mode under gunicorn/RQ)
        "prometheus-client>=0.20,<1",
        # login and public-endpoint throttling (FAB 5.3 builds its limiter on it)
        "Flask-Limiter>=3.8,<5",
        # `cashback mail-outbox`: the local SMTP server of the demo and the tests
        "aiosmtpd>=1.4,<2",
    ],
    extras_require={
        "test": [
            "pytest>=8,<9",
            # random test order (seed printed in the header; replay with -p "randomly_seed=N")
            "pytest-randomly>=3.15,<6",
            # the suite in parallel worker processes (scripts/test.sh: -n 4 --dist loadgroup)
            "pytest-xdist>=3.5,<4",
            "hypothesis>=6.100,<7",
            # API fuzzing against the published OpenAPI (tests/fuzz)
            "schemathesis>=4.3,<5",
            "playwright>=1.45,<2",
        ],
        # bench/payouts.py --profile samples the worker processes from outside
        "bench": ["py-spy>=0.4,<0.5"],
    },
    entry_points={
        "console_scripts": ["cashback=portal.cli:main"],
        # Payout provider plugins register here (see README "Adding a provider").
        "cashback.payment_providers": [
            "test = payment_providers.testbank.provider",
            "phones = payment_providers.phones.provider",
            "yoomoney = payment_providers.yoomoney.provider",
            "webmoney = payment_providers.webmoney.provider",
            "qiwi = payment_providers.qiwi.provider",
        ],
    },
)
