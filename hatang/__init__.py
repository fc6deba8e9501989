"""hatang: monitoring for a provincial information-infrastructure network."""

__version__ = "0.1.0"
