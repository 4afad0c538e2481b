"""mmbot: a live paper-trading market-making bot."""

__version__ = "0.1.0"
