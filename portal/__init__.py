"""Cashback back-office portal (Flask-AppBuilder application)."""
