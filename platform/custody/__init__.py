"""custody: governance and tamper-evident audit for the data that trains language models."""

__version__ = "0.1.0"
