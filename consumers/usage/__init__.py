"""Usage analytics: who used the service, where, when, for what, and with what result."""
