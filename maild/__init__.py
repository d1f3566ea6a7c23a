"""maild: an email-driven help desk daemon."""

__version__ = "0.1.0"
