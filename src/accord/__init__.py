"""accord: outcome research for psychotherapy."""

__version__ = "0.1.0"
